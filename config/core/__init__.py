"""The bottom layer: what every app shares and no app owns.

Domain errors' base (errors), the API's error shape, exception handler, throttles, pagination and
conditional responses (api, api_schema), the read-only admin base (admin), middleware, request types
(http) and the site-wide template filters (templatetags). Nothing here imports accounts, markets or
forecast; tools/import_graph.py checks it (docs/architecture.md)."""
