"""The optional error reporter: Sentry's SDK runs only when SENTRY_DSN is set (checked in fresh processes, so
this test run's own process never initialises it)."""

import json
import os
import subprocess
import sys

import pytest
from django.test import Client

from tests.celery_worker import ROOT

PROBE = """
import json, sys
import django
django.setup()
loaded = "sentry_sdk" in sys.modules
report = {"loaded": loaded}
if loaded:
    import sentry_sdk
    client = sentry_sdk.get_client()
    report.update(active=client.is_active(), integrations=sorted(client.integrations),
                  pii=client.options["send_default_pii"], environment=client.options["environment"])
print(json.dumps(report))
"""


def settings_probe(**env: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("SENTRY_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=ROOT,
        env={**environment, "DJANGO_SETTINGS_MODULE": "config.settings.test", **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_without_a_dsn_the_sdk_is_not_even_imported():
    assert settings_probe() == {"loaded": False}


def test_with_a_dsn_django_and_celery_errors_are_reported():
    # Nothing is sent: no error happens in the probe, and the DSN points at a closed loopback port.
    report = settings_probe(SENTRY_DSN="http://public@127.0.0.1:9/1", SENTRY_ENVIRONMENT="staging")
    assert report["active"] is True
    assert {"django", "celery"} <= set(report["integrations"])
    assert report["pii"] is False
    assert report["environment"] == "staging"


class RecordingSentry:
    """Stands in for the loaded SDK: what the request handling tags."""

    def __init__(self) -> None:
        self.tags: list[tuple[str, str]] = []

    def set_tag(self, key: str, value: str) -> None:
        self.tags.append((key, value))


@pytest.mark.django_db
def test_when_loaded_every_request_tags_its_reports_with_the_request_id(monkeypatch):
    sentry = RecordingSentry()
    monkeypatch.setitem(sys.modules, "sentry_sdk", sentry)
    response = Client().get("/api/v1/markets/", HTTP_X_REQUEST_ID="req-77")
    assert response["X-Request-ID"] == "req-77"
    assert ("request_id", "req-77") in sentry.tags
