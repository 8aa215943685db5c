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
from redis.connection import AbstractConnection
from rest_framework.test import APIClient

from config.core import ratelimit
from config.core.ratelimit import Limit, gcra_consume_and_get
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


def command_names(packed: bytes) -> list[str]:
    """The names of the commands in one write (RESP arrays of bulk strings, as redis-py packs them)."""
    names, position = [], 0
    while position < len(packed):
        header_end = packed.index(b"\r\n", position)
        count = int(packed[position + 1 : header_end])
        position = header_end + 2
        for index in range(count):
            length_end = packed.index(b"\r\n", position)
            length = int(packed[position + 1 : length_end])
            if index == 0:
                names.append(packed[length_end + 2 : length_end + 2 + length].decode().upper())
            position = length_end + 2 + length + 2
    return names


@pytest.fixture
def writes(monkeypatch):
    """Every write to Redis from here on, as the list of the command names it holds: one write is one round trip."""
    sent: list[list[str]] = []
    original = AbstractConnection.send_packed_command

    def recording(self, command, check_health=True):
        chunks = [command] if isinstance(command, (bytes, str)) else command
        sent.append(command_names(b"".join(chunk.encode() if isinstance(chunk, str) else chunk for chunk in chunks)))
        return original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording)
    return sent


@pytest.mark.parametrize(("path", "query"), CACHED_READS)
def test_a_fast_cached_read_is_one_round_trip_of_the_limit_and_an_mget(market, monkeypatch, writes, path, query):
    application = forecastle_wsgi_application()
    assert call(application, path, QUERY_STRING=query)["status"] == 200  # fills the cache
    writes.clear()
    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    assert call(application, path, QUERY_STRING=query)["status"] == 200
    assert writes == [["EVALSHA", "MGET"]]


@pytest.mark.parametrize(("path", "query"), CACHED_READS)
def test_a_cached_read_through_django_is_one_round_trip_too(market, writes, path, query):
    client = APIClient()
    assert client.get(path, QUERY_STRING=query).status_code == 200  # fills the cache
    writes.clear()
    assert client.get(path, QUERY_STRING=query).status_code == 200
    assert writes == [["EVALSHA", "MGET"]]


def test_the_limit_script_is_loaded_where_redis_does_not_know_it(monkeypatch, writes):
    # A script text this server has never seen (as after a restart or SCRIPT FLUSH): NOSCRIPT, then loaded.
    script = ratelimit.GCRA_MANY_SCRIPT + f"-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(ratelimit, "GCRA_MANY_SCRIPT", script)
    monkeypatch.setattr(ratelimit, "GCRA_MANY_SHA", hashlib.sha1(script.encode(), usedforsecurity=False).hexdigest())
    limit = Limit(key=f"test:noscript:{uuid.uuid4().hex}", count=1, seconds=60)
    assert gcra_consume_and_get(limits=[], keys=["test:nothing"]) == (None, [None])  # connected
    writes.clear()
    assert gcra_consume_and_get(limits=[limit], keys=["test:nothing"]) == (None, [None])
    assert writes == [["EVALSHA", "MGET"], ["SCRIPT"], ["EVALSHA", "MGET"]]
    writes.clear()
    wait, values = gcra_consume_and_get(limits=[limit], keys=["test:nothing"])
    assert wait is not None
    assert wait > 0
    assert values == []
    assert writes == [["EVALSHA", "MGET"]]
