"""The Celery application. Periodic schedules live in config/settings/base.py (CELERY_BEAT_SCHEDULE)."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("forecastle")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
