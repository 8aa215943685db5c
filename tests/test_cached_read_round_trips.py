"""What a cached read sends to Redis, pinned: one write (one round trip) holding the limit's script and an MGET of
the keys, answered before Django handles the request (config/core/fast_reads.py) or by the view. The values are
read by the MGET, not returned by the script: Redis copies a value into a script and out again, which made a
cached history (tens of kB) cost several times the Redis CPU of a plain read (docs/benchmarks.md)."""

import hashlib
import uuid
from datetime import timedelta

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.utils import timezone
from redis.connection import Connection
from rest_framework.test import APIClient

from config.core import ratelimit
from config.core.ratelimit import Limit, gcra_consume_and_get
from config.core.redis_cache import commands_packed
from config.core.wsgi import forecastle_wsgi_application
from markets.models import Market
from tests.test_api_middleware_stack import call
from tests.test_fast_reads import refuse

pytestmark = pytest.mark.django_db

CACHED_READS = [
    ("/api/v1/markets/counted/", ""),
    ("/api/v1/markets/", ""),
    ("/api/v1/markets/counted/quote/", "outcome=A&side=buy&amount=10"),
    ("/api/v1/markets/counted/history/", ""),
]


@pytest.fixture
def market(make_market):
    return make_market(
        slug="counted",
        question="Is every Redis command counted?",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("A", "A"), ("B", "B"), ("C", "C")],
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=3),
    )


# A gzip reader's MGET reads the gzip entry of a list page or a history (markets.cache.encoded_key), not the
# identity one beside it: the same one round trip either way.
ACCEPT_ENCODINGS = [{}, {"HTTP_ACCEPT_ENCODING": "gzip"}]


@pytest.mark.parametrize("coding", ACCEPT_ENCODINGS)
@pytest.mark.parametrize(("path", "query"), CACHED_READS)
def test_a_fast_cached_read_is_one_round_trip_of_the_limit_and_an_mget(
    market, monkeypatch, redis_writes, path, query, coding
):
    application = forecastle_wsgi_application()
    assert call(application, path, QUERY_STRING=query, **coding)["status"] == 200  # fills the cache
    redis_writes.clear()
    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    assert call(application, path, QUERY_STRING=query, **coding)["status"] == 200
    assert redis_writes == [["EVALSHA", "MGET"]]


@pytest.mark.parametrize("coding", ACCEPT_ENCODINGS)
@pytest.mark.parametrize(("path", "query"), CACHED_READS)
def test_a_cached_read_through_django_is_one_round_trip_too(market, redis_writes, path, query, coding):
    client = APIClient()
    assert client.get(path, QUERY_STRING=query, **coding).status_code == 200  # fills the cache
    redis_writes.clear()
    assert client.get(path, QUERY_STRING=query, **coding).status_code == 200
    assert redis_writes == [["EVALSHA", "MGET"]]


def test_the_limit_script_is_loaded_where_redis_does_not_know_it(monkeypatch, redis_writes):
    # A script text this server has never seen (as after a restart or SCRIPT FLUSH): NOSCRIPT, then loaded.
    script = ratelimit.GCRA_MANY_SCRIPT + f"-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(ratelimit, "GCRA_MANY_SCRIPT", script)
    monkeypatch.setattr(ratelimit, "GCRA_MANY_SHA", hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest())
    limit = Limit(key=f"test:noscript:{uuid.uuid4().hex}", count=1, seconds=60)
    assert gcra_consume_and_get(limits=[], keys=["test:nothing"]) == (None, [None])  # connected
    redis_writes.clear()
    assert gcra_consume_and_get(limits=[limit], keys=["test:nothing"]) == (None, [None])
    assert redis_writes == [["EVALSHA", "MGET"], ["SCRIPT"], ["EVALSHA", "MGET"]]
    redis_writes.clear()
    wait, values = gcra_consume_and_get(limits=[limit], keys=["test:nothing"])
    assert wait is not None
    assert wait > 0
    assert values == []
    assert redis_writes == [["EVALSHA", "MGET"]]


def test_commands_are_packed_as_redis_py_packs_them():
    commands: list[list[str | bytes | int]] = [
        ["EVALSHA", "f" * 40, 2, "limit:10.0.0.1", "clé:ünïcode", "1732990000000.125", -3],
        ["MGET", b"\x00raw\r\n"],
    ]
    assert commands_packed(commands) == b"".join(Connection().pack_commands(commands))
    with pytest.raises(TypeError):
        commands_packed([["SET", "key", 1.5]])  # type: ignore[list-item]
