"""Prometheus metrics: the request and Celery task metrics, the /metrics guard, and the scrape.

Metrics are prometheus-client objects in the process that records them. Under gunicorn's several workers and
Celery's pool, every process writes its values to files in PROMETHEUS_MULTIPROC_DIR (prometheus-client's
multiprocess mode, chosen by that variable at process start) and a scrape of any web worker reads them all, the
Celery worker's included when it shares the directory. Values that describe the system rather than a process
(queue length, markets waiting for settlement) are read at scrape time by collectors that apps register with
`scrape_collector_register`. Every metric is listed in docs/operations.md.
"""

import hmac
import ipaddress
import logging
import os
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol
from urllib.parse import urlparse

import redis
from celery import signals
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from config.core.client_address import client_address

logger = logging.getLogger(__name__)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Seconds: from a fast cached read to a slow settlement-sized request.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

HTTP_REQUESTS = Counter(
    "forecastle_http_requests",
    "HTTP requests answered, by route pattern, method and status.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "forecastle_http_request_duration_seconds",
    "Time to answer an HTTP request, by route pattern, method and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
CELERY_TASKS = Counter(
    "forecastle_celery_tasks",
    "Celery tasks finished, by task name and outcome (success, failure, retry, ...).",
    ["task", "outcome"],
)
CELERY_TASK_DURATION = Histogram(
    "forecastle_celery_task_duration_seconds",
    "Time a Celery task ran, by task name.",
    ["task"],
    buckets=LATENCY_BUCKETS,
)


def request_observe(*, route: str, method: str, status: int, seconds: float) -> None:
    labels = {"route": route, "method": method if method in _KNOWN_METHODS else "other", "status": str(status)}
    HTTP_REQUESTS.labels(**labels).inc()
    HTTP_REQUEST_DURATION.labels(**labels).observe(seconds)


_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _task_start(task_id: str | None = None, **_: object) -> None:
    _task_started[task_id or ""] = time.perf_counter()


@signals.task_postrun.connect
def _task_finish(task_id: str | None = None, task: Any = None, state: str | None = None, **_: object) -> None:
    started = _task_started.pop(task_id or "", None)
    name = getattr(task, "name", None) or "unknown"
    CELERY_TASKS.labels(task=name, outcome=(state or "unknown").lower()).inc()
    if started is not None:
        CELERY_TASK_DURATION.labels(task=name).observe(time.perf_counter() - started)


class ScrapeCollector(Protocol):
    """A prometheus-client custom collector whose values are read when /metrics is scraped."""

    def collect(self) -> Iterable[Metric]: ...

    def describe(self) -> Iterable[Metric]: ...


_scrape_collectors: list[ScrapeCollector] = []


def scrape_collector_register(collector: ScrapeCollector) -> None:
    """Adds a collector to every scrape of /metrics (apps call this from AppConfig.ready)."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)


class _ThisProcess:
    """The metrics of this process alone (no multiprocess directory): the default registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


class CeleryQueueLength:
    """The length of each Celery queue on a Redis broker, read at scrape time (LLEN of the queue's list)."""

    def describe(self) -> Iterable[Metric]:
        return [GaugeMetricFamily("forecastle_celery_queue_length", "Messages waiting in a Celery queue.")]

    def collect(self) -> Iterator[Metric]:
        broker_url = settings.CELERY_BROKER_URL
        if urlparse(broker_url).scheme not in {"redis", "rediss"}:
            return
        family = GaugeMetricFamily(
            "forecastle_celery_queue_length", "Messages waiting in a Celery queue.", labels=["queue"]
        )
        client = redis.Redis.from_url(broker_url, socket_connect_timeout=0.5, socket_timeout=0.5)
        # kombu prefixes every key with the transport's global_keyprefix when one is set (the tests set one).
        prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
        try:
            for queue in celery_queue_names():
                family.add_metric([queue], client.llen(prefix + queue))
        except redis.RedisError as error:
            logger.warning("could not read the Celery queue length for /metrics: %s", error)
            return
        finally:
            client.close()
        yield family


def celery_queue_names() -> list[str]:
    return [getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")]


scrape_collector_register(CeleryQueueLength())


def _process_metrics_registry() -> CollectorRegistry:
    """Every process's metrics (from the multiprocess directory), or this process's alone."""
    registry = CollectorRegistry(auto_describe=True)
    directory = os.environ.get(MULTIPROCESS_DIR_ENV)
    if directory:
        MultiProcessCollector(registry, path=directory)
    else:
        registry.register(_ThisProcess())
    return registry


def registry_for_scrape() -> CollectorRegistry:
    """The processes' metrics and the scrape-time ones."""
    registry = _process_metrics_registry()
    for collector in _scrape_collectors:
        registry.register(collector)
    return registry


@signals.worker_init.connect
def _worker_exporter(**_: object) -> None:
    """With WORKER_METRICS_PORT set, the Celery worker serves its own metrics (for a worker on a machine with no
    web process sharing its multiprocess directory). Plain HTTP with no guard, so it listens on
    WORKER_METRICS_ADDRESS, the loopback interface unless an operator chooses a private one."""
    port: int | None = settings.WORKER_METRICS_PORT
    if port is None:
        return
    if not os.environ.get(MULTIPROCESS_DIR_ENV):
        logger.warning("WORKER_METRICS_PORT without %s: the pool's processes' metrics are lost", MULTIPROCESS_DIR_ENV)
    start_http_server(port, addr=settings.WORKER_METRICS_ADDRESS, registry=_process_metrics_registry())
    logger.info("worker metrics on http://%s:%d/metrics", settings.WORKER_METRICS_ADDRESS, port)


def _address_allowed(address: str | None, networks: Iterable[str]) -> bool:
    if address is None:
        return False
    client = ipaddress.ip_address(address)
    return any(client in ipaddress.ip_network(network, strict=False) for network in networks)


def metrics_access(request: HttpRequest) -> int:
    """200 when the scraper may read /metrics, 403 when it may not, 404 when /metrics is switched off.

    Off unless METRICS_ALLOWED_ADDRESSES or METRICS_BEARER_TOKEN is set. The address is the client's by the one
    rule of config/core/client_address.py: the socket's, or behind API_NUM_PROXIES proxies the one they
    forwarded. So a request that came in through the proxy is judged by its real client, not by the proxy's
    (internal, likely allowed) address, and a client cannot forge its way in with X-Forwarded-For.
    """
    token: str = settings.METRICS_BEARER_TOKEN
    networks: list[str] = settings.METRICS_ALLOWED_ADDRESSES
    if not token and not networks:
        return 404
    if token and hmac.compare_digest(request.headers.get("Authorization", "").encode(), f"Bearer {token}".encode()):
        return 200
    if networks and _address_allowed(client_address(request), networks):
        return 200
    return 403


def metrics_response(request: HttpRequest) -> HttpResponse:
    status = metrics_access(request)
    if status != 200:
        return HttpResponse(status=status, content_type="text/plain; charset=utf-8")
    response = HttpResponse(generate_latest(registry_for_scrape()), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
