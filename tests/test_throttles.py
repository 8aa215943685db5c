"""The API throttles count in constant cost: one Redis round trip and one small value per identity, whatever
the rate; "N/period" lets N through at once, then one per period/N; a refused request is not counted."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import key_requests
from accounts.services import api_key_create
from config.core import ratelimit
from config.core.ratelimit import gcra_consume
from config.core.redis_scripts import ScriptCall
from markets.models import Market


@pytest.fixture
def clock(monkeypatch):
    now = [1_800_000_000.0]
    monkeypatch.setattr(ratelimit.time, "time", lambda: now[0])
    return now


def test_a_burst_of_the_rate_then_one_per_interval(clock):
    assert [gcra_consume(key="t", count=3, seconds=60) for _ in range(3)] == [None, None, None]
    wait = gcra_consume(key="t", count=3, seconds=60)
    assert wait == pytest.approx(20, abs=0.01)
    clock[0] += 19.9
    assert gcra_consume(key="t", count=3, seconds=60) is not None  # refused again, and not counted
    clock[0] += 0.2
    assert gcra_consume(key="t", count=3, seconds=60) is None
    assert gcra_consume(key="t", count=3, seconds=60) is not None
    clock[0] += 60
    assert [gcra_consume(key="t", count=3, seconds=60) for _ in range(4)] == [None, None, None, wait]


def test_identities_are_counted_apart(clock):
    assert gcra_consume(key="a", count=1, seconds=60) is None
    assert gcra_consume(key="a", count=1, seconds=60) is not None
    assert gcra_consume(key="b", count=1, seconds=60) is None


def test_the_state_is_one_small_number_whatever_the_rate(clock):
    # 1,000 a minute, one request a millisecond: the next request's time runs ahead of the clock (about 30 s
    # after these 500), so the key lives long enough to be read however slow the machine (a rate whose key
    # expired 1 ms after the last request made this test fail on a loaded machine).
    for _ in range(500):
        assert gcra_consume(key="busy", count=1_000, seconds=60) is None
        clock[0] += 0.001
    stored = cache._cache.get_client().get(cache.make_key("busy"))  # type: ignore[attr-defined]
    assert len(stored) < 24
    assert 0 < float(stored) - clock[0] * 1000 <= 60_000  # the next request's time, in ms, within one period


@pytest.mark.django_db
def test_every_request_meets_its_limits_in_one_round_trip(make_user, make_market, monkeypatch):
    make_market(
        slug="limited",
        question="Limited?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=1),
    )
    calls: list[str] = []
    original = ratelimit.gcra_consume

    def counting(**kwargs):
        calls.append(kwargs["key"])
        return original(**kwargs)

    original_with_read = ratelimit.gcra_consume_and_get

    def counting_with_read(**kwargs):
        # A cached read counts its limits in the round trip that reads the cache (config.core.cached_reads).
        calls.append(" ".join(limit.key for limit in kwargs["limits"]))
        return original_with_read(**kwargs)

    original_with_key = key_requests.redis_commands_run

    def counting_with_key(client, commands):
        # A request by a key this process knows counts its account's limits in the round trip that reads the key's
        # entry (accounts.key_requests): the script's keys after the entry's.
        calls.extend(" ".join(command.keys[1:]) for command in commands if isinstance(command, ScriptCall))
        return original_with_key(client, commands)

    monkeypatch.setattr("config.core.api.gcra_consume", counting)
    monkeypatch.setattr("config.core.cached_reads.gcra_consume_and_get", counting_with_read)
    monkeypatch.setattr("accounts.key_requests.redis_commands_run", counting_with_key)
    anonymous = APIClient()
    assert anonymous.get("/api/v1/markets/limited/").status_code == 200
    assert len(calls) == 1
    assert "anon_read" in calls[0]
    _key, raw_key = api_key_create(user=make_user(), name="bot")
    signed_in = APIClient()
    signed_in.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    calls.clear()
    assert signed_in.get("/api/v1/markets/limited/").status_code == 200
    assert len(calls) == 1
    assert "user_read" in calls[0]
    calls.clear()
    trade = signed_in.post(
        "/api/v1/markets/limited/trades/", {"outcome": "YES", "side": "buy", "amount": "1"}, format="json"
    )
    assert trade.status_code == 201, trade.content
    assert len(calls) == 1
    assert "trade" in calls[0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/markets/counted/",
        "/api/v1/markets/",
        "/api/v1/markets/counted/quote/?outcome=YES&side=buy&amount=1",
        "/api/v1/markets/counted/history/",
    ],
)
def test_a_cached_read_is_limited_in_its_one_round_trip(settings, make_market, path):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "2/min"},
    }
    make_market(slug="counted")
    client = APIClient()
    assert [client.get(path).status_code for _ in range(3)] == [200, 200, 429]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/markets/?page_size=0",  # refused by the input's check, before the cache is read
        "/api/v1/markets/counted/quote/?outcome=YES&side=buy",
        "/api/v1/markets/missing/",  # a cache miss answered from the database
    ],
)
def test_a_read_answered_without_the_cache_is_limited_too(settings, make_market, path):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "2/min"},
    }
    make_market(slug="counted")
    client = APIClient()
    statuses = [client.get(path).status_code for _ in range(3)]
    assert statuses[:2] in ([400, 400], [404, 404])
    assert statuses[2] == 429
