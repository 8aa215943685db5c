"""The live stream's ASGI application, for uvicorn: `uvicorn config.stream_asgi:application`.

Only `/api/v1/stream/` is served here (markets/stream/server.py); everything else stays on gunicorn
(config/wsgi.py). `make run` starts both behind its front (tools/front.py); a production proxy routes
`/api/v1/stream/` here and the rest to gunicorn (README, "Deployment and scaling").
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)

from markets.stream.server import stream_application  # noqa: E402

application = stream_application()
