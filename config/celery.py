"""The Celery application. Periodic schedules live in config/settings/base.py (CELERY_BEAT_SCHEDULE)."""

import os
from typing import Any

from celery import Celery, signals

# Connects the signal handlers that carry the request id into tasks and count task outcomes.
import config.core.request_context  # noqa: F401

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("forecastle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.setup_logging.connect
def _keep_django_logging(**_: Any) -> None:
    """Celery would replace the logging setup with its own; Django's LOGGING (JSON in production, with the
    request id) applies to the worker and beat too."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
