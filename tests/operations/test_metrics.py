"""/metrics: the guard, and that every metric of docs/operations.md moves when its event happens."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from celery import current_app
from django.db import connection
from django.test import Client
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from markets.errors import InsufficientFunds
from markets.services import market_resolve, market_settle, reconciliation_run
from tests.celery_worker import ROOT, broker_flush, celery_worker, wait_for
from tests.celery_worker import test_database_url as worker_database_url
from tests.markets.settlement_helpers import buy

TOKEN = "scrape-secret-0123456789"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = Client().get("/metrics")
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


@pytest.fixture
def metrics_open_to_loopback(settings):
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1", "::1"]


@pytest.mark.django_db
class TestGuard:
    def test_off_unless_an_address_or_a_token_is_configured(self):
        assert Client().get("/metrics").status_code == 404

    def test_an_allowed_address_may_scrape_and_another_may_not(self, settings):
        settings.METRICS_ALLOWED_ADDRESSES = ["10.1.0.0/16"]
        assert Client(REMOTE_ADDR="10.1.4.2").get("/metrics").status_code == 200
        assert Client(REMOTE_ADDR="10.2.0.1").get("/metrics").status_code == 403
        # A forwarded address is not trusted: the connection's own address decides.
        assert Client(REMOTE_ADDR="10.2.0.1").get("/metrics", HTTP_X_FORWARDED_FOR="10.1.4.2").status_code == 403

    def test_behind_the_proxy_the_forwarded_client_is_judged_not_the_proxy(self, settings):
        settings.METRICS_ALLOWED_ADDRESSES = ["10.1.0.0/16"]
        settings.API_NUM_PROXIES = 1
        # Through the proxy (10.1.0.5, inside the allowed network) from the internet: refused.
        through_proxy = Client(REMOTE_ADDR="10.1.0.5")
        assert through_proxy.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
        # Forging an allowed address to the left of the proxy's entry does not help.
        assert through_proxy.get("/metrics", HTTP_X_FORWARDED_FOR="10.1.4.2, 203.0.113.9").status_code == 403
        # Prometheus scraping the process directly, from inside: allowed.
        assert Client(REMOTE_ADDR="10.1.4.2").get("/metrics").status_code == 200

    def test_the_bearer_token_opens_it_from_anywhere(self, settings):
        settings.METRICS_BEARER_TOKEN = TOKEN
        client = Client(REMOTE_ADDR="203.0.113.9")
        assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
        assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
        assert client.get("/metrics").status_code == 403


@pytest.mark.django_db
@pytest.mark.usefixtures("metrics_open_to_loopback")
class TestMetrics:
    def test_requests_are_counted_and_timed_by_route_and_status(self):
        labels = {"route": "/api/v1/markets/<slug:slug>/", "method": "GET", "status": "404"}
        before = value("forecastle_http_requests_total", **labels)
        before_count = value("forecastle_http_request_duration_seconds_count", **labels)
        assert Client().get("/api/v1/markets/nope/").status_code == 404
        assert value("forecastle_http_requests_total", **labels) == before + 1
        assert value("forecastle_http_request_duration_seconds_count", **labels) == before_count + 1
        samples = scrape()
        assert samples[("forecastle_http_requests_total", tuple(sorted(labels.items())))] == before + 1

    def test_trades_rejections_and_trade_latency(self, make_user, make_market):
        staff, alice = make_user("staff", is_staff=True), make_user("alice")
        market = make_market("metered", created_by=staff)
        bought = value("forecastle_trades_total", side="buy")
        executed = value("forecastle_trade_duration_seconds_count", result="executed")
        refused = value("forecastle_trades_rejected_total", reason="insufficient_funds")
        buy(alice, market, "YES", "10")
        with pytest.raises(InsufficientFunds):
            buy(alice, market, "YES", "999999")
        assert value("forecastle_trades_total", side="buy") == bought + 1
        assert value("forecastle_trade_duration_seconds_count", result="executed") == executed + 1
        assert value("forecastle_trades_rejected_total", reason="insufficient_funds") == refused + 1

    def test_settlement_scoring_and_the_backlog(self, make_user, make_market):
        from forecast.services import market_score

        staff, alice, bob = make_user("staff", is_staff=True), make_user("alice"), make_user("bob")
        market = make_market("settled", created_by=staff)
        buy(alice, market, "YES", "10")
        buy(bob, market, "NO", "10")
        market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="It did.")
        backlog = scrape()
        assert backlog[("forecastle_markets_resolving", ())] == 1
        assert backlog[("forecastle_settlement_oldest_pending_seconds", ())] >= 0
        positions = value("forecastle_positions_settled_total")
        settled = value("forecastle_settlement_duration_seconds_count", result="settled")
        scorings = value("forecastle_scoring_duration_seconds_count")
        assert market_settle(market_id=market.pk) is not None
        market_score(market_id=market.pk)
        assert value("forecastle_positions_settled_total") == positions + 2
        assert value("forecastle_settlement_duration_seconds_count", result="settled") == settled + 1
        assert value("forecastle_scoring_duration_seconds_count") == scorings + 1
        after = scrape()
        assert after[("forecastle_markets_resolving", ())] == 0
        assert after[("forecastle_settlement_oldest_pending_seconds", ())] == 0

    def test_reconciliation_violations(self, make_user):
        alice = make_user("alice")
        runs = value("forecastle_reconciliation_runs_total")
        broken = value("forecastle_reconciliation_violations_total", invariant="cached_balance_matches_entries")
        assert reconciliation_run().violation_count == 0
        assert scrape()[("forecastle_reconciliation_last_violations", ())] == 0
        with connection.cursor() as cursor:
            cursor.execute("UPDATE accounts_account SET balance = balance + 1 WHERE user_id = %s", [alice.pk])
        assert reconciliation_run().violation_count == 2
        assert value("forecastle_reconciliation_runs_total") == runs + 2
        assert value("forecastle_reconciliation_violations_total", invariant="cached_balance_matches_entries") == (
            broken + 1
        )
        assert scrape()[("forecastle_reconciliation_last_violations", ())] == 2

    def test_the_celery_queue_length_is_read_from_the_broker(self):
        broker_flush()
        try:
            for _ in range(3):
                current_app.send_task("markets.tasks.candles_roll_up")
            assert scrape()[("forecastle_celery_queue_length", (("queue", "celery"),))] == 3
        finally:
            broker_flush()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_the_workers_task_outcomes_reach_the_web_scrape_through_the_multiprocess_directory(settings, monkeypatch):
    """The Celery worker writes its metrics to PROMETHEUS_MULTIPROC_DIR; the web's /metrics reads them there,
    and with WORKER_METRICS_PORT the worker serves them itself."""
    settings.METRICS_ALLOWED_ADDRESSES = ["127.0.0.1"]
    directory = tempfile.mkdtemp(prefix="prom-")
    port = free_port()
    broker_flush()
    try:
        env = {"PROMETHEUS_MULTIPROC_DIR": directory, "WORKER_METRICS_PORT": str(port)}
        with celery_worker(name="metered", env=env) as worker:
            current_app.send_task("markets.tasks.candles_roll_up")
            current_app.send_task("markets.tasks.settlements_sweep")
            wait_for(lambda: worker.output().count("succeeded in") >= 2, what="both tasks to finish")
            own = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        assert 'forecastle_celery_tasks_total{outcome="success",task="markets.tasks.candles_roll_up"} 1.0' in own
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", directory)
        samples = scrape()
    finally:
        broker_flush()
        shutil.rmtree(directory, ignore_errors=True)
    for task in ("markets.tasks.candles_roll_up", "markets.tasks.settlements_sweep"):
        assert samples[("forecastle_celery_tasks_total", (("outcome", "success"), ("task", task)))] == 1
        assert samples[("forecastle_celery_task_duration_seconds_count", (("task", task),))] == 1


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_gunicorn_workers_add_up_in_one_scrape(tmp_path: Path):
    """gunicorn workers in multiprocess mode: every worker's requests are in one scrape. Each worker exits after
    5 requests (--max-requests), so 20 requests are answered by at least 4 processes, some of them gone."""
    port = free_port()
    directory = tmp_path / "prometheus"
    directory.mkdir()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": worker_database_url(),
        "PROMETHEUS_MULTIPROC_DIR": str(directory),
        "METRICS_ALLOWED_ADDRESSES": "127.0.0.1",
    }
    gunicorn = Path(sys.executable).parent / "gunicorn"
    process = subprocess.Popen(
        [
            str(gunicorn),
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--max-requests",
            "5",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=2)  # noqa: S310 -- a loopback test server
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        for _ in range(20):
            urllib.request.urlopen(f"{base}/api/v1/markets/", timeout=30)  # noqa: S310
        text = urllib.request.urlopen(f"{base}/metrics", timeout=30).read().decode()  # noqa: S310
    finally:
        process.terminate()
        process.wait(timeout=20)
    pattern = re.compile(
        r'^forecastle_http_requests_total\{method="GET",route="/api/v1/markets/",status="200"\} (\S+)$', re.M
    )
    match = pattern.search(text)
    assert match is not None, text[:2000]
    assert float(match.group(1)) == 20
