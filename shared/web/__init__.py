"""HTTP for the functions: ``router`` (routes, authentication, problem responses),
``bodies`` (request bodies), ``health`` and ``openapi`` (each function's document), and
``serving`` (the local server ``plant serve`` runs). Nothing is imported here."""

__all__ = ["health", "openapi", "router", "serving"]
