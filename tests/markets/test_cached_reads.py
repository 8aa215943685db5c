"""Cached reads send bytes rendered beforehand: a hit runs no serializer, and the bytes are the ones a fresh
render gives, with an ETag and Last-Modified that revalidate."""

import json
import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from markets import cache as price_cache
from markets.apis.history import MarketHistoryApi
from markets.apis.markets import MarketDetailApi, MarketListApi, market_detail_render
from markets.models import Market
from markets.selectors.prices import market_snapshot_build
from markets.services import market_resolve, trade_execute
from markets.trade_request import TradeRequest

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_user, make_market):
    market = make_market(
        slug="rendered",
        question="Is it rendered once?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=3),
    )
    trade_execute(user=make_user(), market=market, request=TradeRequest(outcome="YES", side="buy", shares=Decimal(3)))
    return market


def refuse(*args, **kwargs):
    raise AssertionError("a cached read ran a serializer")


@pytest.mark.parametrize(
    ("path", "serializer"),
    [
        ("/api/v1/markets/rendered/", MarketDetailApi.OutputSerializer),
        ("/api/v1/markets/", MarketListApi.OutputSerializer),
        ("/api/v1/markets/rendered/history/", MarketHistoryApi.OutputSerializer),
    ],
)
def test_a_cached_read_sends_the_stored_bytes_without_a_serializer(market, monkeypatch, path, serializer):
    client = APIClient()
    first = client.get(path)
    assert first.status_code == 200
    monkeypatch.setattr(serializer, "to_representation", refuse)
    again = client.get(path)
    assert again.status_code == 200
    assert again.content == first.content
    assert again["Content-Type"] == "application/json"
    assert again["ETag"] == first["ETag"]
    assert client.get(path, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    assert client.get(path, HTTP_IF_MODIFIED_SINCE=first["Last-Modified"]).status_code == 304


def test_the_stored_detail_equals_a_fresh_render_after_a_trade(market, make_user, django_capture_on_commit_callbacks):
    client = APIClient()
    client.get("/api/v1/markets/rendered/")
    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(
            user=make_user(), market=market, request=TradeRequest(outcome="NO", side="buy", shares=Decimal(7))
        )
    cached = client.get("/api/v1/markets/rendered/")
    snapshot = market_snapshot_build(slug="rendered")
    assert snapshot is not None
    body, etag = market_detail_render(snapshot)
    assert cached.content == body
    assert cached["ETag"] == etag
    assert cached.json()["outcomes"][1]["shares_outstanding"] == "7.000000"


def test_every_process_renders_the_detail_with_its_snapshots():
    """A snapshot stored by a process that never loads the API's URLs (a Celery worker, a benchmark seeding through
    the services) carries the detail's body too, so the detail does not render it on every read until the next
    trade: the renderer is registered when the markets app is ready."""
    program = (
        "import django; django.setup()\n"
        "from markets.apis.markets import DETAIL_RENDERING\n"
        "from markets.cache import _snapshot_renderers\n"
        "import sys; sys.exit(0 if DETAIL_RENDERING in _snapshot_renderers else 3)\n"
    )
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    assert subprocess.run([sys.executable, "-c", program], env=environment, check=False).returncode == 0


def test_the_shared_detail_serializer_renders_as_a_new_one_would(market, make_user):
    """market_detail_render reuses one serializer; its bytes are a new serializer's, with a resolution too."""
    staff = make_user("resolver", is_staff=True)
    for resolve in (None, "outcome"):
        if resolve:
            Market.objects.filter(pk=market.pk).update(status=Market.Status.CLOSED, closed_at=timezone.now())
            market.refresh_from_db()
            market_resolve(market=market, user=staff, kind=resolve, outcome_code="YES", reason="It happened.")
        snapshot = market_snapshot_build(slug="rendered")
        assert snapshot is not None
        fresh = JSONRenderer().render(MarketDetailApi.OutputSerializer(snapshot["market"]).data)
        assert market_detail_render(snapshot)[0] == fresh
        assert (resolve is None) == (json.loads(fresh)["resolution"] is None)


HISTORY = "/api/v1/markets/rendered/history/"


def snapshot_expires(slug):
    """The market's snapshot (and its version beside it) gone, as when its FORECASTLE_PRICE_CACHE_SECONDS pass."""
    key = price_cache.snapshot_key(slug)
    cache.delete_many([key, price_cache.snapshot_version_key(key)])


def test_a_history_outlives_its_snapshot_and_is_sent_again_unrendered(market, monkeypatch):
    client = APIClient()
    first = client.get(HISTORY)
    assert first.status_code == 200
    snapshot_expires("rendered")
    monkeypatch.setattr(MarketHistoryApi.OutputSerializer, "to_representation", refuse)
    again = client.get(HISTORY)
    assert again.status_code == 200
    assert (again.content, again["ETag"], again["Last-Modified"]) == (
        first.content,
        first["ETag"],
        first["Last-Modified"],
    )


def test_a_history_rendered_before_a_trade_is_not_sent_after_it(market, make_user):
    client = APIClient()
    first = client.get(HISTORY)
    # The trade's own refresh of the snapshot is an after-commit callback, which this test's transaction never
    # runs: the stored snapshot is now out of date, then expires, and the next read finds the new version.
    trade_execute(user=make_user(), market=market, request=TradeRequest(outcome="NO", side="buy", shares=Decimal(2)))
    snapshot_expires("rendered")
    again = client.get(HISTORY)
    assert again.status_code == 200
    points = [len(series["points"]) for series in again.json()["series"]]
    assert points == [len(series["points"]) + 1 for series in first.json()["series"]]
    assert again["ETag"] != first["ETag"]


def test_a_history_is_kept_longer_than_its_snapshot(market, settings):
    settings.FORECASTLE_PRICE_CACHE_SECONDS = 30
    settings.FORECASTLE_RENDERED_CACHE_SECONDS = 300
    APIClient().get(HISTORY)
    client = cache._cache.get_client()  # type: ignore[attr-defined]
    # The body for identity readers and the one for gzip readers (markets.cache.encoded_entries) alike.
    history_keys = client.keys(cache.make_key("prices:history:*"))
    assert len(history_keys) == 2
    assert all(30 < client.ttl(key) <= 300 for key in history_keys)
    assert client.ttl(cache.make_key(price_cache.snapshot_key("rendered"))) <= 30
    # A candle window ending now is keyed by its bucket, of no use once the bucket ends: it keeps the usual time.
    APIClient().get(HISTORY, {"interval": "1m"})
    ttls = sorted(client.ttl(key) for key in client.keys(cache.make_key("prices:history:*")))
    assert ttls[1] <= 30 < ttls[2]
