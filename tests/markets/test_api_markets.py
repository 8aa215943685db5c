"""Contract tests of the public market reads: list, detail, history, and the price cache behind them."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from markets.models import Market, Outcome, PricePoint
from markets.services import market_close, trade_execute
from markets.services.price_cache import prices_refresh
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

DEAD_REDIS = "redis://127.0.0.1:1/0"
RUTTE_QUESTION = "Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?"


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def market(make_market):
    return make_market("rutte-nato", question=RUTTE_QUESTION, category="politics")


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    assert isinstance(body["error"]["fields"], dict)
    return body["error"]


def test_list_shows_public_markets_with_probabilities(make_market, client, market):
    make_market("draft-market", open_now=False)
    response = client.get("/api/v1/markets/")
    assert response.status_code == 200
    body = response.json()
    assert [row["slug"] for row in body["results"]] == ["rutte-nato"]  # drafts are not public
    row = body["results"][0]
    assert row["status"] == "open"
    assert row["volume"] == "0.000000"
    assert [(o["code"], o["probability"]) for o in row["outcomes"]] == [("YES", 0.5), ("NO", 0.5)]
    assert row["closes_at"].endswith("Z")


def test_list_filters_search_and_ordering(make_market, client, market, make_user):
    other = make_market(
        "next-nato-chief",
        category="nato",
        kind=Market.Kind.MULTIPLE,
        question="Who will be the next NATO Secretary-General?",
        outcomes=[("RUTTE", "Rutte"), ("KALLAS", "Kallas"), ("OTHER", "Other")],
    )
    trade_execute(user=make_user(), market=other, request=trade_request("RUTTE", "buy", shares="5"))
    market_close(market=market)

    assert [r["slug"] for r in client.get("/api/v1/markets/?status=open").json()["results"]] == ["next-nato-chief"]
    assert [r["slug"] for r in client.get("/api/v1/markets/?status=closed").json()["results"]] == ["rutte-nato"]
    assert [r["slug"] for r in client.get("/api/v1/markets/?category=NATO").json()["results"]] == ["next-nato-chief"]
    assert [r["slug"] for r in client.get("/api/v1/markets/?search=appointed").json()["results"]] == ["rutte-nato"]
    by_volume = client.get("/api/v1/markets/?ordering=-volume").json()["results"]
    assert [r["slug"] for r in by_volume] == ["next-nato-chief", "rutte-nato"]
    by_creation = client.get("/api/v1/markets/?ordering=created_at").json()["results"]
    assert [r["slug"] for r in by_creation] == ["rutte-nato", "next-nato-chief"]


def test_list_pages_with_cursors(make_market, client):
    for index in range(5):
        make_market(f"market-{index}")
    seen = []
    url = "/api/v1/markets/?page_size=2&ordering=created_at"
    while url:
        body = client.get(url).json()
        assert len(body["results"]) <= 2
        seen += [row["slug"] for row in body["results"]]
        url = body["next"]
    assert seen == [f"market-{index}" for index in range(5)]


@pytest.mark.parametrize(
    ("query", "field"),
    [("status=bogus", "status"), ("ordering=question", "ordering"), ("page_size=0", "page_size")],
)
def test_list_rejects_bad_parameters(client, query, field):
    error = assert_error(client.get(f"/api/v1/markets/?{query}"), 400, "invalid")
    assert field in error["fields"]


def test_list_with_a_forged_cursor_is_a_404_in_the_error_shape(client, market):
    assert_error(client.get("/api/v1/markets/?cursor=not-a-cursor"), 404, "not_found")


def test_detail_has_every_field(client, market, make_user):
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10"))
    body = client.get("/api/v1/markets/rutte-nato/").json()
    assert body["question"].startswith("Will Mark Rutte")
    assert body["kind"] == "binary"
    assert body["status"] == "open"
    assert body["liquidity"] == "100.0000"
    assert body["volume"] == "5.124948"
    assert body["trader_count"] == 1
    assert body["resolution"] is None
    assert {"description", "resolution_criteria", "opens_at", "closes_at", "closed_at", "resolved_at"} <= set(body)
    yes = body["outcomes"][0]
    assert (yes["code"], yes["label"]) == ("YES", "Yes")
    assert yes["probability"] == pytest.approx(0.524979, abs=1e-6)
    assert sum(o["probability"] for o in body["outcomes"]) == pytest.approx(1.0)


def test_unknown_market_and_unknown_api_path_are_json_404s(client):
    assert_error(client.get("/api/v1/markets/no-such-market/"), 404, "not_found")
    assert_error(client.get("/api/v1/no-such-endpoint/"), 404, "not_found")


def test_a_wrong_method_is_a_405_in_the_error_shape(client, market):
    assert_error(client.delete("/api/v1/markets/rutte-nato/"), 405, "method_not_allowed")


def test_detail_revalidates_with_etag_and_last_modified(client, market, make_user, django_capture_on_commit_callbacks):
    first = client.get("/api/v1/markets/rutte-nato/")
    etag = first["ETag"]
    assert first["Last-Modified"]
    not_modified = client.get("/api/v1/markets/rutte-nato/", HTTP_IF_NONE_MATCH=etag)
    assert not_modified.status_code == 304
    assert not_modified.content == b""
    assert not_modified["ETag"] == etag

    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10"))
    changed = client.get("/api/v1/markets/rutte-nato/", HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag


def test_prices_are_served_from_the_cache_and_refreshed_on_trade_commit(
    client, market, make_user, django_capture_on_commit_callbacks
):
    assert client.get("/api/v1/markets/rutte-nato/").json()["outcomes"][0]["probability"] == 0.5
    assert client.get("/api/v1/markets/").json()["results"][0]["outcomes"][0]["probability"] == 0.5
    # A change behind the cache's back is not seen: the reads came from Redis, not the database.
    Outcome.objects.filter(market=market, code="YES").update(probability=0.9)
    assert client.get("/api/v1/markets/rutte-nato/").json()["outcomes"][0]["probability"] == 0.5
    listed = client.get("/api/v1/markets/").json()["results"][0]
    assert listed["outcomes"][0]["probability"] == 0.5

    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", shares="10"))
    fresh = Outcome.objects.get(market=market, code="YES").probability
    assert fresh == pytest.approx(0.524979, abs=1e-6)
    assert client.get("/api/v1/markets/rutte-nato/").json()["outcomes"][0]["probability"] == fresh
    assert client.get("/api/v1/markets/").json()["results"][0]["outcomes"][0]["probability"] == fresh


def test_reads_fall_back_to_the_database_when_redis_is_down(client, market, make_user, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": DEAD_REDIS}}
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    prices_refresh(market.pk)  # the commit callback must not raise either

    detail = client.get("/api/v1/markets/rutte-nato/")
    assert detail.status_code == 200
    assert detail.json()["outcomes"][0]["probability"] == pytest.approx(0.524979, abs=1e-6)
    assert client.get("/api/v1/markets/").json()["results"][0]["volume"] == "5.124948"
    quote = client.get("/api/v1/markets/rutte-nato/quote/?outcome=YES&side=buy&shares=10")
    assert quote.status_code == 200
    history = client.get("/api/v1/markets/rutte-nato/history/?interval=1h")
    assert history.status_code == 200
    assert history.json()["series"][0]["candles"][-1]["close"] == pytest.approx(0.524979, abs=1e-6)


def test_raw_history_lists_every_price_change(client, market, make_user):
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    trade_execute(user=user, market=market, request=trade_request("NO", "buy", shares="30"))
    body = client.get("/api/v1/markets/rutte-nato/history/").json()
    assert body["interval"] == "raw"
    yes, no = body["series"]
    assert [p["probability"] for p in yes["points"]][:2] == [0.5, pytest.approx(0.524979, abs=1e-6)]
    assert len(yes["points"]) == len(no["points"]) == 3
    for p_yes, p_no in zip(yes["points"], no["points"], strict=True):
        assert p_yes["time"] == p_no["time"]
        assert p_yes["probability"] + p_no["probability"] == pytest.approx(1.0)
    assert yes["candles"] == []


def test_candles_aggregate_each_bucket_and_carry_the_last_price_forward(client, market, make_user):
    user = make_user()
    base = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    PricePoint.objects.filter(market=market).update(created_at=base)  # the opening point
    for minutes, shares in [(10, "10"), (20, "20"), (130, "5")]:
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares=shares))
        latest = PricePoint.objects.filter(market=market).latest("id")
        PricePoint.objects.filter(pk=latest.pk).update(created_at=base + timedelta(minutes=minutes))
    points = list(PricePoint.objects.filter(market=market).order_by("created_at"))
    yes = [point.probabilities[0] for point in points]

    body = client.get(
        "/api/v1/markets/rutte-nato/history/",
        {"interval": "1h", "start": "2026-03-02T12:00:00Z", "end": "2026-03-02T16:00:00Z"},
    ).json()
    candles = body["series"][0]["candles"]
    assert [c["time"] for c in candles] == [
        "2026-03-02T12:00:00Z",
        "2026-03-02T13:00:00Z",
        "2026-03-02T14:00:00Z",
        "2026-03-02T15:00:00Z",
    ]
    first, empty, third, last = candles
    assert (first["open"], first["high"], first["low"], first["close"]) == pytest.approx(
        (yes[0], yes[2], yes[0], yes[2])
    )
    # 13:00 had no trade: the 12:00 close carries forward as a flat candle.
    assert (empty["open"], empty["high"], empty["low"], empty["close"]) == pytest.approx((yes[2],) * 4)
    assert third["close"] == pytest.approx(yes[3])
    assert last["close"] == pytest.approx(yes[3])

    later = client.get(
        "/api/v1/markets/rutte-nato/history/",
        {"interval": "1h", "start": "2026-03-02T13:00:00Z", "end": "2026-03-02T14:00:00Z"},
    ).json()["series"][0]["candles"]
    # A window starting after the last change opens from the price before it.
    assert [(c["time"], c["close"]) for c in later] == [("2026-03-02T13:00:00Z", pytest.approx(yes[2]))]


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"interval": "2m"}, "interval"),
        ({"start": "yesterday"}, "start"),
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
        ({"interval": "1m", "start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start"),
        ({"start": "2026-03-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
    ],
)
def test_history_rejects_bad_windows(client, market, query, field):
    error = assert_error(client.get("/api/v1/markets/rutte-nato/history/", query), 400, "invalid")
    assert field in error["fields"]


@pytest.mark.parametrize("url", ["/api/v1/markets/", "/api/v1/markets/{slug}/trades/"])
def test_list_query_count_does_not_grow_with_page_size(make_market, client, make_user, settings, url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    user = make_user()
    for index in range(6):
        market = make_market(f"market-{index}")
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="1"))
        trade_execute(user=user, market=market, request=trade_request("NO", "buy", shares="1"))
    path = url.format(slug="market-0")
    counts = []
    for size in (1, 6):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, {"page_size": size})
        assert response.status_code == 200
        assert len(response.json()["results"]) == (size if "trades" not in path else min(size, 2))
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_an_unexpected_error_is_a_json_500_not_a_traceback(client, market, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr("markets.apis.common.market_snapshot", broken)
    assert_error(client.get("/api/v1/markets/rutte-nato/"), 500, "server_error")


def test_django_500_handler_answers_json_under_api_only(rf):
    from config.core.api import server_error

    api = server_error(rf.get("/api/v1/markets/"))
    assert api.status_code == 500
    assert api["Content-Type"] == "application/json"
    assert api.content.startswith(b'{"error": {"code": "server_error"')
    assert server_error(rf.get("/markets/"))["Content-Type"].startswith("text/html")
