"""Read replicas for the public reads that tolerate a little staleness (docs/operations.md, "Past one database").

A replica serves a request only when all of these hold; anything else reads the primary:
- replicas are configured (DATABASE_REPLICA_URLS, as the aliases in DATABASE_REPLICAS);
- the request is a GET or HEAD of a view named in DATABASE_REPLICA_VIEWS (market lists and pages, price
  history, leaderboards, public profiles and scores);
- the query is for a model of an app in DATABASE_REPLICA_APPS (markets, forecast): users, wallets, sessions
  and API keys are always read from the primary;
- no transaction is open on the primary (a read inside one must see its writes);
- the signed-in user has not written anything in the last DATABASE_REPLICA_PIN_SECONDS (read-your-writes: after
  a trade, their market page, prices and positions come from the primary until the replicas have caught up).

The user is looked at lazily, on the first query the request sends to a replica-eligible model, so an API
client authenticated by its key (which DRF does only inside the view) is known by then.
"""

import random
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Model
from django.http import HttpRequest, HttpResponse

from config.core.cache import UNREACHABLE, cache_set, cache_unreachable

SAFE_METHODS = frozenset({"GET", "HEAD"})
PIN_KEY = "db:read-your-writes:{user_id}"


@dataclass
class _ReplicaReads:
    request: HttpRequest
    # Chosen on the request's first eligible query: a replica alias, or DEFAULT_DB_ALIAS when pinned.
    alias: str | None = None


_replica_reads: ContextVar[_ReplicaReads | None] = ContextVar("replica_reads", default=None)


def _user_id(request: HttpRequest) -> int | None:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return int(user.pk)


def user_pinned_to_primary(user_id: int) -> bool:
    """Whether the user wrote recently. Without the cache, everyone is: the primary is always right."""
    try:
        return bool(cache.get(PIN_KEY.format(user_id=user_id)))
    except UNREACHABLE:
        cache_unreachable("read of a primary pin (reading from the primary)")
        return True


def user_pin_to_primary(user_id: int) -> None:
    # Without the cache the pin is lost, but user_pinned_to_primary answers "pinned" while the cache is down.
    cache_set(PIN_KEY.format(user_id=user_id), 1, timeout=settings.DATABASE_REPLICA_PIN_SECONDS)


def _choose(request: HttpRequest) -> str:
    user_id = _user_id(request)
    if user_id is not None and user_pinned_to_primary(user_id):
        return DEFAULT_DB_ALIAS
    return random.choice(settings.DATABASE_REPLICAS)


class ReplicaRouter:
    """DATABASE_ROUTERS: public reads to a replica, everything else (and every write) to the primary."""

    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        reads = _replica_reads.get()
        if reads is None or model._meta.app_label not in settings.DATABASE_REPLICA_APPS:
            return None
        if connections[DEFAULT_DB_ALIAS].in_atomic_block:
            return None
        if reads.alias is None:
            reads.alias = _choose(reads.request)
        return reads.alias

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return DEFAULT_DB_ALIAS

    def allow_relation(self, first: Model, second: Model, **hints: Any) -> bool | None:
        # A replica holds the primary's rows: an object read from either may point at one from the other.
        return True

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        # Replicas follow the primary through replication, never through migrations of their own.
        return db == DEFAULT_DB_ALIAS


class ReplicaReadsMiddleware:
    """Opens replica reads for the views named in DATABASE_REPLICA_VIEWS, and pins a user who wrote to the
    primary for DATABASE_REPLICA_PIN_SECONDS. Does nothing when no replica is configured."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not settings.DATABASE_REPLICAS:
            return self.get_response(request)
        token = _replica_reads.set(None)
        try:
            response = self.get_response(request)
        finally:
            _replica_reads.reset(token)
        if request.method not in SAFE_METHODS and response.status_code < 400:
            user_id = _user_id(request)
            if user_id is not None:
                user_pin_to_primary(user_id)
        return response

    def process_view(self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any) -> None:
        match = request.resolver_match
        if (
            settings.DATABASE_REPLICAS
            and request.method in SAFE_METHODS
            and match is not None
            and match.view_name in settings.DATABASE_REPLICA_VIEWS
        ):
            _replica_reads.set(_ReplicaReads(request=request))
