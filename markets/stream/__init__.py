"""The live stream of market events (docs/api.md, "Live stream"): what the services publish to Redis after a
change commits (`events`, used by markets.services.stream) and the ASGI server that sends them to clients as
Server-Sent Events (`server`, run by uvicorn next to gunicorn)."""
