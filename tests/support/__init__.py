"""Helpers shared by the test suites: an offline Yahoo Finance and a network guard."""
