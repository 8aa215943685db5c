"""The operator's endpoints: /healthz, /readyz and /metrics (docs/operations.md).

They are answered by the first middleware, before the rest of the stack runs: a load balancer or Prometheus
reaches a process by its address over plain HTTP, so these must not depend on ALLOWED_HOSTS, the HTTPS
redirect, sessions, throttles or the cache, and they are logged at DEBUG only (probes come every few seconds).
"""

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import psycopg
import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from kombu import Connection

from config.core.metrics import metrics_response

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"


def database_check(timeout: float) -> None:
    """A new connection to the primary database (libpq's connect_timeout bounds the connect) runs SELECT 1."""
    params = connections["default"].get_connection_params()
    params["connect_timeout"] = max(2, round(timeout))  # libpq treats anything below 2 s as 2 s
    params["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    with psycopg.connect(**params) as connection:
        connection.execute("SELECT 1")


def redis_check(timeout: float) -> None:
    """The cache and throttle store answers PING."""
    client = redis.Redis.from_url(
        str(settings.CACHES["default"]["LOCATION"]), socket_connect_timeout=timeout, socket_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()


def broker_check(timeout: float) -> None:
    """The Celery broker accepts a connection."""
    with Connection(
        settings.CELERY_BROKER_URL,
        connect_timeout=timeout,
        transport_options={"socket_timeout": timeout, "socket_connect_timeout": timeout},
    ) as connection:
        # For Redis, opening the channel PINGs the server.
        connection.connect()
        connection.default_channel  # noqa: B018


READINESS_CHECKS: dict[str, Callable[[float], None]] = {
    "database": database_check,
    "redis": redis_check,
    "broker": broker_check,
}


def readiness() -> tuple[bool, dict[str, str]]:
    """Runs every check at once, each bounded by READINESS_TIMEOUT_SECONDS: ("ok" or why not) per dependency."""
    timeout: float = settings.READINESS_TIMEOUT_SECONDS
    results: dict[str, str] = {}
    executor = ThreadPoolExecutor(max_workers=len(READINESS_CHECKS), thread_name_prefix="readyz")
    try:
        futures = {name: executor.submit(check, timeout) for name, check in READINESS_CHECKS.items()}
        deadline = time.monotonic() + timeout + 0.5
        for name, future in futures.items():
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
                results[name] = "ok"
            except FutureTimeout:
                results[name] = f"no answer within {timeout:g} s"
            except Exception as error:  # any failure of a dependency is a "not ready", reported by name
                results[name] = f"{type(error).__name__}: {error}".strip()[:200]
    finally:
        # A check stuck past its deadline is left to its own socket timeout rather than waited for.
        executor.shutdown(wait=False, cancel_futures=True)
    return all(result == "ok" for result in results.values()), results


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


class OperationsEndpointsMiddleware:
    """Answers /healthz, /readyz and /metrics; every other request goes on down the stack."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path == HEALTH_PATH:
            logger.debug("health check")
            return _no_store(JsonResponse({"status": "ok"}))
        if path == READY_PATH:
            ready, checks = readiness()
            body = {"status": "ok" if ready else "unavailable", "checks": checks}
            response = _no_store(JsonResponse(body, status=200 if ready else 503))
            if ready:
                logger.debug("ready")
            else:
                logger.warning("not ready: %s", ", ".join(name for name, result in checks.items() if result != "ok"))
                # Logged above with the failing dependency named; Django's own "Service Unavailable" line says less.
                response._has_been_logged = True  # type: ignore[attr-defined]
            return response
        if path == METRICS_PATH:
            logger.debug("metrics scrape")
            return metrics_response(request)
        return self.get_response(request)
