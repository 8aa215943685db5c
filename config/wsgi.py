import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
django.setup(set_prefix=False)

from config.core.wsgi import forecastle_wsgi_application  # noqa: E402

application = forecastle_wsgi_application()
