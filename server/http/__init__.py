"""The REST API: routes, the OpenAPI document, and reading query strings and bodies."""
