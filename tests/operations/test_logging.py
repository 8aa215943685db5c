"""Request ids and logs: X-Request-ID on every response, the id on every log line of the request, JSON lines in
production, and the id carried into the Celery tasks a request enqueues (on a real worker)."""

import io
import json
import logging
import subprocess
import sys
from logging.config import dictConfig

import pytest
from django.test import Client
from rest_framework.test import APIClient

from config.core.request_context import REQUEST_ID_HEADER, request_id_var
from config.settings.base import logging_config
from markets.models import Market
from tests.celery_worker import ROOT, broker_flush, celery_worker, wait_for
from tests.markets.settlement_helpers import buy

SETTLE_TASK = "markets.tasks.market_settle"
SCORE_TASK = "forecast.tasks.market_score"


@pytest.mark.django_db
def test_every_response_carries_a_new_request_id():
    first = Client().get("/api/v1/markets/")
    second = Client().get("/api/v1/markets/")
    assert len(first[REQUEST_ID_HEADER]) == 32
    assert first[REQUEST_ID_HEADER] != second[REQUEST_ID_HEADER]


@pytest.mark.django_db
def test_a_request_id_from_the_proxy_is_kept_and_a_malformed_one_replaced():
    assert Client().get("/api/v1/markets/", HTTP_X_REQUEST_ID="lb-4f2a.17")[REQUEST_ID_HEADER] == "lb-4f2a.17"
    # A trailing newline too: it would forge a log line, and Django refuses it in a response header.
    trailing = Client().get("/api/v1/markets/", HTTP_X_REQUEST_ID="abc\n")
    assert trailing.status_code == 200
    assert trailing[REQUEST_ID_HEADER] != "abc\n"
    replaced = Client().get("/api/v1/markets/", HTTP_X_REQUEST_ID="bad id\nINFO forged line")[REQUEST_ID_HEADER]
    assert "\n" not in replaced
    assert len(replaced) == 32


@pytest.mark.django_db
def test_the_access_log_line_and_the_views_lines_carry_the_request_id(caplog):
    with caplog.at_level(logging.INFO):
        response = Client().get("/api/v1/markets/no-such-market/", HTTP_X_REQUEST_ID="req-404")
    assert response.status_code == 404
    access = [record for record in caplog.records if record.name == "forecastle.request"]
    assert len(access) == 1
    assert access[0].request_id == "req-404"
    assert (access[0].status, access[0].route, access[0].method) == (404, "/api/v1/markets/<slug:slug>/", "GET")
    assert all(getattr(record, "request_id", None) == "req-404" for record in caplog.records)
    assert request_id_var.get() is None


def render(config: dict, emit) -> str:
    """The lines a logging configuration writes while `emit` runs."""
    stream = io.StringIO()
    config["handlers"]["console"]["stream"] = stream
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    dictConfig(config)
    try:
        emit()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    return stream.getvalue()


def test_production_logs_are_one_json_object_a_line_with_the_request_id():
    def emit() -> None:
        token = request_id_var.set("abc123")
        try:
            logging.getLogger("markets.trading").info("traded %s", "YES", extra={"route": "/x", "status": 201})
        finally:
            request_id_var.reset(token)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("markets.trading").exception("failed")

    lines = render(logging_config(json_lines=True, level="INFO"), emit).splitlines()
    first = json.loads(lines[0])
    assert first["message"] == "traded YES"
    assert (first["level"], first["logger"], first["request_id"]) == ("INFO", "markets.trading", "abc123")
    assert (first["route"], first["status"]) == ("/x", 201)
    assert "time" in first
    second = json.loads(lines[1])
    assert second["level"] == "ERROR"
    assert "ValueError: boom" in second["exc_info"]
    assert len(lines) == 2  # the traceback stays inside its JSON line


def test_make_run_logs_are_plain_lines():
    output = render(logging_config(json_lines=False, level="INFO"), lambda: logging.getLogger("x").info("hello"))
    assert output.rstrip().endswith("INFO x [-] hello")


def test_production_settings_log_json_by_default():
    code = "from django.conf import settings; print(settings.LOG_FORMAT)"
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 50,
        "EMAIL_HOST": "smtp.example.invalid",
        "DEFAULT_FROM_EMAIL": "forecastle@example.invalid",
        "PATH": "/usr/bin:/bin",
    }
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "json"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_request_id_reaches_the_tasks_the_request_enqueues(make_user, make_market):
    """Staff resolve through the API; the settlement task (and the scoring it enqueues in turn) log under the
    resolution request's id, in the worker's JSON log lines."""
    broker_flush()
    staff, alice = make_user("staff", is_staff=True), make_user("alice")
    market = make_market("traced", created_by=staff)
    buy(alice, market, "YES", "25")
    client = APIClient()
    client.force_login(staff)
    with celery_worker(name="traced", env={"LOG_FORMAT": "json"}) as worker:
        response = client.post(
            f"/api/v1/markets/{market.slug}/resolution/",
            {"kind": "outcome", "outcome": "YES", "reason": "It happened."},
            format="json",
            HTTP_X_REQUEST_ID="resolve-req-1",
        )
        assert response.status_code == 202, response.content
        assert response[REQUEST_ID_HEADER] == "resolve-req-1"
        wait_for(
            lambda: Market.objects.values_list("status", flat=True).get(pk=market.pk) == Market.Status.RESOLVED,
            what="the worker to settle",
        )
        wait_for(lambda: f'"task_name": "{SCORE_TASK}"' in worker.output(), what="scoring to run", timeout=20)
        lines = [json.loads(line) for line in worker.output().splitlines() if line.startswith("{")]
    broker_flush()
    settled = [line for line in lines if line.get("task_name") == SETTLE_TASK and "settled market" in line["message"]]
    assert len(settled) == 1
    assert settled[0]["request_id"] == "resolve-req-1"
    scored = [line for line in lines if line.get("task_name") == SCORE_TASK]
    assert scored
    assert all(line["request_id"] == "resolve-req-1" for line in scored)
    # Lines outside any task (the worker starting up) carry no request id.
    assert any(line.get("request_id") is None for line in lines)
