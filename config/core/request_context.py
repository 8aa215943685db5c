"""The request id and the access log.

Every request gets an id: the one a proxy sent in X-Request-ID (when it looks like an id), or a new one.
It is returned in the X-Request-ID response header, attached to every log line written while the request
runs, and carried in a header of every Celery task the request enqueues, so the task's log lines (and the
tasks it enqueues in turn) carry it too. See docs/operations.md.
"""

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar, Token
from typing import Any

from celery import signals
from django.core.signals import request_finished, request_started
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from config.core import metrics

REQUEST_ID_HEADER = "X-Request-ID"
# The Celery message header that carries the id from the request (or task) that enqueued a task.
TASK_HEADER = "forecastle_request_id"
# An id from outside is kept only if it is short and plain: it goes into log lines as it is.
_ACCEPTABLE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
task_var: ContextVar[tuple[str, str] | None] = ContextVar("task", default=None)

access_logger = logging.getLogger("forecastle.request")


def current_request_id() -> str | None:
    return request_id_var.get()


def _tag_error_reports(request_id: str | None) -> None:
    """An error reported to Sentry (when SENTRY_DSN loaded it) carries the request id of the request or task."""
    sentry_sdk = sys.modules.get("sentry_sdk")
    if sentry_sdk is not None and request_id is not None:
        sentry_sdk.set_tag("request_id", request_id)


def request_id_for(header_value: str | None) -> str:
    """The id a request runs under: the incoming header's when acceptable, else a new random one."""
    if header_value and _ACCEPTABLE_ID.fullmatch(header_value):
        return header_value
    return uuid.uuid4().hex


class RequestContextFilter(logging.Filter):
    """Adds request_id (and task_id, task_name inside a Celery task) to every record a handler writes.

    Attributes are only added when known: elsewhere the JSON formatter writes null and the plain one "-".
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request_id = request_id_var.get()
        if request_id is not None and not hasattr(record, "request_id"):
            record.request_id = request_id
        task = task_var.get()
        if task is not None:
            record.task_id, record.task_name = task
        return True


@receiver(request_started)
def _begin_request(environ: dict[str, Any] | None = None, **_: object) -> None:
    """The id is set when Django starts handling the request and cleared when the response is closed, so the
    lines Django itself writes outside the middleware ("Not Found: ...", a 500's traceback) carry it too."""
    request_id = request_id_for((environ or {}).get("HTTP_X_REQUEST_ID"))
    request_id_var.set(request_id)
    _tag_error_reports(request_id)


@receiver(request_finished)
def _end_request(**_: object) -> None:
    request_id_var.set(None)


class RequestContextMiddleware:
    """Returns the request's id in X-Request-ID, and records the request metrics and one access log line (INFO;
    a server error's traceback is logged by Django itself, at ERROR)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_var.get()
        if request_id is None:
            request_id = request_id_for(request.headers.get(REQUEST_ID_HEADER))
            request_id_var.set(request_id)
            _tag_error_reports(request_id)
        started = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - started
        response[REQUEST_ID_HEADER] = request_id
        match = request.resolver_match
        route = f"/{match.route}" if match is not None else "unmatched"
        request_recorded(
            method=request.method or "", path=request.path, route=route, status=response.status_code, seconds=duration
        )
        return response


def request_recorded(*, method: str, path: str, route: str, status: int, seconds: float) -> None:
    """The request metrics and the access log line of one request (also for config.core.fast_reads)."""
    metrics.request_observe(route=route, method=method, status=status, seconds=seconds)
    access_logger.info(
        "%s %s %s %.1fms",
        method,
        path,
        status,
        seconds * 1000,
        extra={
            "method": method,
            "path": path,
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
        },
    )


@signals.before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **_: object) -> None:
    """A task enqueued while a request (or a task) runs carries that request's id."""
    request_id = request_id_var.get()
    if request_id is not None and headers is not None:
        headers.setdefault(TASK_HEADER, request_id)


# The context a running task replaced, by task id, put back when it ends (a task run in place, inside a
# request, must not leave the request without its id).
_task_tokens: dict[str, tuple[Token[str | None], Token[tuple[str, str] | None]]] = {}


@signals.task_prerun.connect
def _enter_task(task_id: str | None = None, task: Any = None, **_: object) -> None:
    request = getattr(task, "request", None)
    request_id = getattr(request, TASK_HEADER, None) or (getattr(request, "headers", None) or {}).get(TASK_HEADER)
    if not isinstance(request_id, str):
        request_id = request_id_var.get()
    key = task_id or ""
    _tag_error_reports(request_id)
    _task_tokens[key] = (request_id_var.set(request_id), task_var.set((key, getattr(task, "name", "") or "")))


@signals.task_postrun.connect
def _leave_task(task_id: str | None = None, **_: object) -> None:
    tokens = _task_tokens.pop(task_id or "", None)
    if tokens is not None:
        request_id_var.reset(tokens[0])
        task_var.reset(tokens[1])
