"""The stream's publish script on the real Redis: run by its SHA1 (EVALSHA), sent in full only when Redis answers
NOSCRIPT. The stream itself, end to end, is tests/markets/test_stream.py."""

from typing import Any

import pytest
import redis
from django.conf import settings

from markets.services import stream as stream_service
from markets.services.stream import stream_publish
from markets.stream.events import PUBLISH_SCRIPT, PUBLISH_SCRIPT_SHA
from tests.redis_namespace import namespace_delete
from tests.stream_server import stream_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def key(settings):
    settings.FORECASTLE_STREAM_KEY = stream_key()
    yield settings.FORECASTLE_STREAM_KEY
    namespace_delete(settings.REDIS_URL, settings.FORECASTLE_STREAM_KEY)


def kinds(key: str) -> list[str]:
    client: Any = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [fields[b"event"].decode() for _id, fields in client.xrange(key)]
    finally:
        client.close()


def test_the_sha_the_publisher_sends_is_the_scripts(key):
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        assert client.script_load(PUBLISH_SCRIPT) == PUBLISH_SCRIPT_SHA
    finally:
        client.close()


def test_a_redis_without_the_script_is_sent_it_in_full(key, make_market, monkeypatch, redis_writes):
    market = make_market("published")
    # A SHA no Redis holds: EVALSHA answers NOSCRIPT, as a restarted or flushed Redis would.
    monkeypatch.setattr(stream_service, "PUBLISH_SCRIPT_SHA", "0" * 40)
    stream_service.stream_redis().ping()  # connected
    redis_writes.clear()
    stream_publish(market.pk)
    assert redis_writes == [["EVALSHA"], ["EVAL"]]
    assert kinds(key) == ["price", "status"]


def test_a_publish_runs_the_loaded_script_by_its_sha(key, make_market, redis_writes):
    market = make_market("published")
    redis.Redis.from_url(settings.REDIS_URL).script_load(PUBLISH_SCRIPT)
    stream_service.stream_redis().ping()  # connected
    redis_writes.clear()
    stream_publish(market.pk)
    # Not sent in full: Redis holds it.
    assert redis_writes == [["EVALSHA"]]
    assert kinds(key) == ["price", "status"]
