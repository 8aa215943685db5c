"""/healthz and /readyz: what a load balancer sees, with every dependency up and with each one down."""

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings
from django.test import Client

pytestmark = pytest.mark.django_db


@contextmanager
def silent_server() -> Iterator[int]:
    """A loopback port that accepts connections and never answers: a hung dependency."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()


def closed_port() -> int:
    """A loopback port nothing listens on: a dependency that is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_healthz_answers_without_touching_a_dependency(django_assert_num_queries, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}
    with django_assert_num_queries(0):
        response = Client().get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response["Cache-Control"] == "no-store"


def test_readyz_is_ok_when_postgresql_redis_and_the_broker_answer():
    response = Client().get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok", "broker": "ok"}}
    assert response["Cache-Control"] == "no-store"


def test_readyz_names_redis_when_the_cache_is_down(settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{closed_port()}/0"}}
    response = Client().get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"] != "ok"
    assert body["checks"]["database"] == body["checks"]["broker"] == "ok"


def test_readyz_names_the_broker_when_it_is_down(settings):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{closed_port()}/0"
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"] != "ok"
    assert checks["database"] == checks["redis"] == "ok"


def test_readyz_names_the_database_when_it_is_down(monkeypatch):
    from django.db import connections

    # Each thread has its own connection wrapper, so the class is patched: the test's open connection is unaffected.
    wrapper_class = type(connections["default"])
    real_params = wrapper_class.get_connection_params
    port = closed_port()
    monkeypatch.setattr(
        wrapper_class, "get_connection_params", lambda self: {**real_params(self), "host": "127.0.0.1", "port": port}
    )
    response = Client().get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert "database" in checks
    assert checks["database"] != "ok"
    assert checks["redis"] == checks["broker"] == "ok"


def test_readyz_gives_up_on_a_hung_dependency_within_its_timeout(settings):
    settings.READINESS_TIMEOUT_SECONDS = 0.5
    with silent_server() as port:
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": f"redis://127.0.0.1:{port}/0"}}
        started = time.monotonic()
        response = Client().get("/readyz")
        elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["redis"] != "ok"
    assert elapsed < 2.5


def test_probes_answer_any_host_and_are_not_logged_at_info(caplog, settings):
    settings.ALLOWED_HOSTS = ["forecastle.example"]
    with caplog.at_level(logging.DEBUG):
        assert Client().get("/healthz", HTTP_HOST="10.0.0.7:8000").status_code == 200
        assert Client().get("/readyz", HTTP_HOST="10.0.0.7:8000").status_code == 200
    assert [record for record in caplog.records if record.levelno >= logging.INFO] == []
    # Any other page checks the host as before.
    assert Client().get("/", HTTP_HOST="10.0.0.7:8000").status_code == 400


def test_probes_are_not_throttled(settings, isolated_cache):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "1/min"},
    }
    client = Client()
    assert all(client.get("/healthz").status_code == 200 for _ in range(5))
    assert all(client.get("/readyz").status_code == 200 for _ in range(3))


def test_the_probes_come_first_in_the_middleware():
    assert settings.MIDDLEWARE[0] == "config.core.health.OperationsEndpointsMiddleware"
