"""The dataprovider server process: ``python -m server`` (or ``dataprovider-server``)."""
