"""What a trade by API key sends to Redis, pinned: one round trip before the trade (the key's entry and the market's
snapshot read by an MGET, the account's trade limit counted by a script, accounts/key_requests.py) and one after its
commit (the snapshot's store and the stream's events, two scripts, markets/services/announce.py). It was four: the
key's GET, the limit with the snapshot, the store, the events (docs/benchmarks.md). The limits' semantics are those
of tests/markets/test_api_trading.py, checked here on the one-trip path (a key this process has authenticated)."""

import hashlib
import uuid
from datetime import timedelta
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create, api_key_revoke
from config.core.api import TradeThrottle
from markets import cache as price_cache
from markets.models import Market, Trade
from markets.selectors.prices import market_snapshot_build
from markets.stream.events import stream_key
from tests.redis_namespace import namespace_delete
from tests.stream_server import stream_key as own_stream_key

pytestmark = pytest.mark.django_db

TRADES = "/api/v1/markets/counted/trades/"
BODY = {"outcome": "A", "side": "buy", "amount": "5"}
REQUEST = [["MGET", "EVALSHA"]]
AFTER_COMMIT = [["EVALSHA", "EVALSHA"]]


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


@pytest.fixture
def stream(settings):
    settings.FORECASTLE_STREAM_KEY = own_stream_key()
    yield settings.FORECASTLE_STREAM_KEY
    namespace_delete(settings.REDIS_URL, settings.FORECASTLE_STREAM_KEY)


@pytest.fixture
def trader(make_user):
    return make_user("counter")


def key_client(trader, **options):
    api_key, raw_key = api_key_create(user=trader, name=f"counting {uuid.uuid4().hex[:6]}", **options)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return api_key, client


def trade(client, key=None):
    return client.post(TRADES, BODY, format="json", HTTP_IDEMPOTENCY_KEY=key or uuid.uuid4().hex)


def trade_rate(settings, trader, rate):
    """The account's trade limit set to `rate`, counted from nothing (the warming trades counted at another rate)."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "trade": rate},
    }
    cache.delete(TradeThrottle().account_key(trader.pk))


def database(market):
    """The market's snapshot rebuilt from the database, with its bodies: what the cache must hold."""
    snapshot = market_snapshot_build(market_id=market.pk)
    assert snapshot is not None
    return price_cache.snapshot_rendered(snapshot)


def events(key):
    client: Any = redis.Redis.from_url(django_settings.REDIS_URL)
    try:
        return [(fields[b"event"].decode(), fields[b"market"].decode()) for _id, fields in client.xrange(key)]
    finally:
        client.close()


def test_a_trade_by_key_is_one_round_trip_before_it_and_one_after_its_commit(
    market, trader, stream, redis_writes, django_capture_on_commit_callbacks
):
    _key, client = key_client(trader)
    with django_capture_on_commit_callbacks(execute=True):
        assert trade(client).status_code == 201  # the key authenticated once, the snapshot cached
    redis_writes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        response = trade(client)
        assert response.status_code == 201, response.content
        assert redis_writes == REQUEST
    assert redis_writes == REQUEST + AFTER_COMMIT
    # What the one round trip after the commit stored and published: the snapshot the database rebuilds, and the
    # trade's events (each trade, then the price).
    assert price_cache.cache_get(price_cache.snapshot_key("counted")) == database(market)
    assert events(stream_key())[-2:] == [("trade", "counted"), ("price", "counted")]


def test_a_script_redis_does_not_hold_is_sent_again_alone(
    market, trader, stream, redis_writes, django_capture_on_commit_callbacks, monkeypatch
):
    _key, client = key_client(trader)
    assert trade(client).status_code == 201
    # A script text this Redis has never seen (as after a restart or SCRIPT FLUSH): NOSCRIPT, then sent in full, alone.
    script = price_cache._STORE_SCRIPT + f"-- {uuid.uuid4().hex}\n"
    monkeypatch.setattr(price_cache, "_STORE_SCRIPT", script)
    monkeypatch.setattr(price_cache, "STORE_SCRIPT_SHA", hashlib.sha1(script.encode()).hexdigest())  # noqa: S324
    published = len(events(stream_key()))
    redis_writes.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert trade(client).status_code == 201
    assert redis_writes == [*REQUEST, ["EVALSHA", "EVALSHA"], ["EVAL"]]
    # The events were published once, and the snapshot stored all the same.
    assert len(events(stream_key())) == published + 2
    assert price_cache.cache_get(price_cache.snapshot_key("counted")) == database(market)


def test_the_trade_limit_counted_with_the_key_is_per_account_with_retry_after(market, trader, settings, redis_writes):
    _first, first = key_client(trader)
    _second, second = key_client(trader)
    assert trade(first).status_code == 201
    assert trade(second).status_code == 201  # both keys remembered: the rest take the one-trip path
    trade_rate(settings, trader, "3/min")
    redis_writes.clear()
    assert [trade(client).status_code for client in (first, second, first)] == [201, 201, 201]
    throttled = trade(second)
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "throttled"
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert redis_writes[:4] == REQUEST * 4
    assert Trade.objects.filter(user=trader).count() == 5


def test_a_revoked_key_is_refused_and_not_counted(market, trader, settings):
    api_key, client = key_client(trader)
    _other, other = key_client(trader)
    assert trade(client).status_code == 201
    assert trade(other).status_code == 201
    trade_rate(settings, trader, "1/min")
    api_key_revoke(api_key=api_key)
    assert [trade(client).status_code for _ in range(3)] == [401, 401, 401]
    # Not counted: the account's one trade a minute is still there.
    assert trade(other).status_code == 201


def test_a_key_without_the_trade_scope_is_refused_and_not_counted(market, trader, settings):
    _reader, reader = key_client(trader, scopes=["read"])
    _trading, trading = key_client(trader)
    assert trade(reader).status_code == 403
    assert trade(trading).status_code == 201
    trade_rate(settings, trader, "1/min")
    assert [trade(reader).status_code for _ in range(3)] == [403, 403, 403]
    assert trade(trading).status_code == 201


def test_a_key_that_expired_is_refused_and_not_counted(market, trader, settings, monkeypatch):
    _expiring, expiring = key_client(trader, expires_at=timezone.now() + timedelta(hours=1))
    _other, other = key_client(trader)
    assert trade(expiring).status_code == 201
    assert trade(other).status_code == 201
    trade_rate(settings, trader, "1/min")
    later = timezone.now() + timedelta(hours=2)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert trade(expiring).status_code == 401
    assert trade(other).status_code == 201


def test_an_invalid_trade_is_counted_once(market, trader, settings):
    _key, client = key_client(trader)
    assert trade(client).status_code == 201
    trade_rate(settings, trader, "2/min")
    assert client.post(TRADES, {"outcome": "A"}, format="json").status_code == 400
    assert trade(client).status_code == 201
    assert trade(client).status_code == 429


def test_with_redis_out_of_reach_a_trade_by_a_remembered_key_goes_through(market, trader, settings):
    _key, client = key_client(trader)
    assert trade(client).status_code == 201
    trade_rate(settings, trader, "1/min")
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    assert [trade(client).status_code for _ in range(2)] == [201, 201]
