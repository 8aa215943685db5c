"""`as_of` on the market list, the detail and the quote: a market as it stood at a past moment (prices exactly,
volume, status, texts from the revision history), refused with a 400 naming as_of before the market opened, in
the future or malformed, and cached for good once the moment is settled (voiding does not rewrite it)."""

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import User
from markets.models import Market, Proposal
from markets.services import (
    market_close,
    market_halt,
    market_liquidity_add,
    market_resolve,
    market_settle,
    market_update,
    proposal_create,
    proposals_finalize_due,
    trade_execute,
)
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def trade(user: User, market: Market, code: str, side: str, at: datetime | None = None, **quantity: str) -> None:
    trade_execute(user=user, market=market, request=trade_request(code, side, **quantity), now=at)


def get(path: str, **params: Any) -> Any:
    return APIClient().get(path, params)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def start() -> datetime:
    return timezone.now() - 48 * HOUR


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


def test_as_of_reproduces_a_past_price_exactly(make_market, make_user, django_capture_on_commit_callbacks):
    market = make_market("past", outcomes=3)
    trader = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        trade(trader, market, "O0", "buy", amount="17.5")
        trade(trader, market, "O2", "buy", shares="3.25")
    then = timezone.now()
    detail_then = get("/api/v1/markets/past/").json()
    quote_then = get("/api/v1/markets/past/quote/", outcome="O1", side="buy", amount="12").json()
    with django_capture_on_commit_callbacks(execute=True):
        trade(trader, market, "O1", "buy", amount="40")
        trade(trader, market, "O0", "sell", shares="5")

    now = get("/api/v1/markets/past/").json()
    assert now["outcomes"] != detail_then["outcomes"]
    past = get("/api/v1/markets/past/", as_of=iso(then))
    assert past.status_code == 200
    body = past.json()
    # The very floats served then, and the maker's q, volume and traders as they were.
    assert body["outcomes"] == detail_then["outcomes"]
    assert (body["volume"], body["trader_count"], body["status"]) == (
        detail_then["volume"],
        detail_then["trader_count"],
        "open",
    )
    assert body["updated_at"] == detail_then["updated_at"]
    quote = get("/api/v1/markets/past/quote/", outcome="O1", side="buy", amount="12", as_of=iso(then))
    assert quote.status_code == 200
    assert quote.json() == quote_then
    listed = get("/api/v1/markets/", as_of=iso(then)).json()["results"]
    assert [row["outcomes"] for row in listed] == [detail_then["outcomes"]]


def test_texts_close_time_liquidity_and_status_come_back_as_they_were(make_market, make_user, staff, start):
    market = make_market("story", question="Will it rain?", created_by=staff, now=start)
    trade(make_user(), market, "YES", "buy", start + HOUR, amount="10")
    before_edit = start + 2 * HOUR
    market_update(market=market, user=staff, question="Will it rain in Oslo?", category="weather", now=start + 3 * HOUR)
    market_liquidity_add(market=market, user=staff, liquidity="250", reason="Deeper.", now=start + 4 * HOUR)
    halted_at = start + 5 * HOUR
    market_halt(market=market, user=staff, reason="Checking the source.", now=halted_at)
    market_close(market=market, user=staff, reason="Enough.", now=start + 6 * HOUR)
    market_resolve(
        market=market, user=staff, kind="outcome", outcome_code="YES", reason="It rained.", now=start + 7 * HOUR
    )
    market_settle(market_id=market.pk, now=start + 8 * HOUR)

    def at(moment: datetime) -> dict[str, Any]:
        response = get("/api/v1/markets/story/", as_of=iso(moment))
        assert response.status_code == 200, response.content
        return response.json()

    early = at(before_edit)
    assert (early["question"], early["category"], early["liquidity"]) == ("Will it rain?", "", "100.0000")
    assert (early["status"], early["halted"], early["closed_at"], early["resolution"]) == ("open", False, None, None)
    assert early["volume"] == "10.000000"
    edited = at(start + 3 * HOUR)
    assert (edited["question"], edited["category"], edited["liquidity"]) == (
        "Will it rain in Oslo?",
        "weather",
        "100.0000",
    )
    halted = at(halted_at + timedelta(minutes=1))
    assert (halted["halted"], halted["halt_reason"], halted["liquidity"]) == (True, "Checking the source.", "250.0000")
    assert at(start + 6 * HOUR + timedelta(minutes=1))["status"] == "closed"
    resolving = at(start + 7 * HOUR + timedelta(minutes=1))
    assert (resolving["status"], resolving["resolution"]["state"], resolving["resolved_at"]) == (
        "resolving",
        "pending",
        None,
    )
    resolved = at(start + 9 * HOUR)
    assert (resolved["status"], resolved["resolution"]["state"]) == ("resolved", "settled")
    # Today's detail but for two things. Adding liquidity recomputes the probabilities (equal to ~1e-16) without
    # writing a price point: as_of serves the last point. Closing keeps a halt's reason though `halted` is false.
    today = get("/api/v1/markets/story/").json()
    for row, now_row in zip(resolved["outcomes"], today["outcomes"], strict=True):
        assert row == {**now_row, "probability": pytest.approx(now_row["probability"], rel=1e-14)}
    unchanged = ("outcomes", "halt_reason", "updated_at")
    assert {k: v for k, v in resolved.items() if k not in unchanged} == {
        k: v for k, v in today.items() if k not in unchanged
    }

    # The quote answers as the market stood: open then (at the price then), halted then, closed then.
    quote = get("/api/v1/markets/story/quote/", outcome="YES", side="buy", shares="1", as_of=iso(before_edit))
    assert quote.status_code == 200
    assert quote.json()["probabilities_before"]["YES"] == early["outcomes"][0]["probability"]
    halted_quote = get("/api/v1/markets/story/quote/", outcome="YES", side="buy", shares="1", as_of=iso(halted_at))
    assert halted_quote.status_code == 409
    assert halted_quote.json()["error"]["code"] == "market_halted"
    assert get("/api/v1/markets/story/quote/", outcome="YES", side="buy", shares="1").status_code == 422


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("yesterday", "format"),
        ("2999-01-01T00:00:00Z", "future"),
        ("1999-12-31T00:00:00Z", "2000"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/markets/", "/api/v1/markets/asked/", "/api/v1/markets/asked/quote/"])
def test_a_malformed_or_future_as_of_is_a_400_naming_it(make_market, path, value, message):
    make_market("asked")
    response = get(path, as_of=value, outcome="YES", side="buy", shares="1")
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["as_of"]
    assert message in error["fields"]["as_of"][0]


@pytest.mark.parametrize("path", ["/api/v1/markets/young/", "/api/v1/markets/young/quote/"])
def test_a_time_before_the_market_opened_is_a_400_naming_as_of(make_market, path, start):
    market = make_market("young", now=start)
    response = get(path, as_of=iso(start - timedelta(seconds=1)), outcome="YES", side="buy", shares="1")
    assert response.status_code == 400
    error = response.json()["error"]
    assert list(error["fields"]) == ["as_of"]
    assert "opened" in error["message"]
    assert get(path, as_of=iso(market.opens_at), outcome="YES", side="buy", shares="1").status_code == 200


def test_an_unencoded_offset_is_read_as_one(make_market, start):
    make_market("offset", now=start)
    moment = (start + HOUR).astimezone(timezone.get_fixed_timezone(120))
    # A `+02:00` written straight into a URL arrives as a space.
    response = APIClient().get(f"/api/v1/markets/offset/?as_of={moment.isoformat().replace('+', '%20')}")
    assert response.status_code == 200, response.content


def test_the_list_holds_the_markets_open_then_with_their_status_then(make_market, make_user, staff, start):
    early = make_market("early", created_by=staff, now=start)
    make_market("later", now=start + 5 * HOUR)
    trade(make_user(), early, "YES", "buy", start + HOUR, amount="5")
    market_halt(market=early, user=staff, reason="Checking.", now=start + 90 * timedelta(minutes=1))
    market_close(market=early, user=staff, reason="Done.", now=start + 2 * HOUR)

    def slugs(**params: Any) -> list[str]:
        response = get("/api/v1/markets/", **params)
        assert response.status_code == 200, response.content
        return [row["slug"] for row in response.json()["results"]]

    assert slugs(as_of=iso(start + HOUR)) == ["early"]
    assert slugs(as_of=iso(start + HOUR), status="open") == ["early"]
    assert slugs(as_of=iso(start + HOUR), status="halted") == []
    assert slugs(as_of=iso(start + 100 * timedelta(minutes=1)), status="halted") == ["early"]
    assert slugs(as_of=iso(start + 3 * HOUR), status="open") == []
    assert slugs(as_of=iso(start + 3 * HOUR), status="closed") == ["early"]
    assert slugs(as_of=iso(start + 6 * HOUR), status="open") == ["later"]
    assert slugs(as_of=iso(start - HOUR)) == []
    assert slugs(as_of=iso(start + 6 * HOUR), ordering="-volume") == ["early", "later"]
    assert slugs(as_of=iso(start + 30 * timedelta(minutes=1)), ordering="-volume") == ["early"]
    row = get("/api/v1/markets/", as_of=iso(start + 30 * timedelta(minutes=1))).json()["results"][0]
    assert (row["status"], row["volume"]) == ("open", "0.000000")


def test_the_list_filters_the_markets_proposed_then(make_market, make_user, staff, start, settings):
    settings.FORECASTLE_CHALLENGE_WINDOW = HOUR
    market = make_market("proposed-then", created_by=staff, now=start)
    make_market("never-proposed", created_by=staff, now=start)
    trade(make_user(), market, "YES", "buy", start + HOUR, amount="5")
    proposal = proposal_create(
        market=market,
        user=staff,
        kind="outcome",
        outcome_code="YES",
        reason="It happened.",
        source_url="https://example.org/answer",
        known_at=None,
        now=start + 2 * HOUR,
    )
    with mock.patch("markets.services.proposals.settlements_enqueue"):
        proposals_finalize_due(now=start + 4 * HOUR)
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.FINAL

    def proposed(moment: datetime) -> list[str]:
        response = get("/api/v1/markets/", as_of=iso(moment), status="proposed")
        assert response.status_code == 200, response.content
        return [row["slug"] for row in response.json()["results"]]

    assert proposed(start + HOUR) == []
    assert proposed(start + 3 * HOUR) == ["proposed-then"]
    assert proposed(start + 5 * HOUR) == []


def test_voided_trades_count_until_they_were_voided_and_the_cached_past_stands(
    make_market, make_user, staff, start, isolated_cache
):
    market = make_market("voided", created_by=staff, now=start)
    trader = make_user()
    trade(trader, market, "YES", "buy", start + HOUR, amount="10")
    trade(trader, market, "YES", "buy", start + 3 * HOUR, amount="30")
    late = start + 4 * HOUR
    before = get("/api/v1/markets/voided/", as_of=iso(late)).json()
    assert before["volume"] == "40.000000"
    market_resolve(
        market=market,
        user=staff,
        kind="outcome",
        outcome_code="YES",
        reason="Known at two.",
        known_at=start + 2 * HOUR,
        now=start + 5 * HOUR,
    )
    with transaction.atomic():
        market_settle(market_id=market.pk, now=start + 6 * HOUR)
    market.refresh_from_db()
    assert market.volume == Decimal("10.000000")

    # At `late` the late trade stood (it was voided later): the same answer, cached or not.
    assert get("/api/v1/markets/voided/", as_of=iso(late)).json() == before
    isolated_cache()
    assert get("/api/v1/markets/voided/", as_of=iso(late)).json() == before
    after = get("/api/v1/markets/voided/", as_of=iso(start + 7 * HOUR)).json()
    assert after["volume"] == "10.000000"
    assert after["outcomes"] == get("/api/v1/markets/voided/").json()["outcomes"]
    assert (
        after["outcomes"][0]["shares_outstanding"]
        == get("/api/v1/markets/voided/").json()["outcomes"][0]["shares_outstanding"]
    )


def test_a_settled_answer_is_served_from_the_cache_and_a_recent_one_follows_trades(
    make_market, make_user, django_assert_num_queries, django_capture_on_commit_callbacks
):
    market = make_market("cached", now=timezone.now() - 2 * HOUR)
    trader = make_user()
    settled = iso(timezone.now() - HOUR)
    recent = timezone.now()
    first = get("/api/v1/markets/cached/", as_of=settled)
    listed = get("/api/v1/markets/", as_of=settled)
    assert get("/api/v1/markets/cached/", as_of=iso(recent)).json()["volume"] == "0.000000"
    # A trade dated before `recent` that commits after the read (its transaction began before that moment).
    with django_capture_on_commit_callbacks(execute=True):
        trade(trader, market, "YES", "buy", at=recent - timedelta(milliseconds=1), amount="20")

    with django_assert_num_queries(0):
        again = get("/api/v1/markets/cached/", as_of=settled)
        quote = get("/api/v1/markets/cached/quote/", outcome="YES", side="buy", shares="2", as_of=settled)
        listed_again = get("/api/v1/markets/", as_of=settled)
    assert again.content == first.content
    assert quote.status_code == 200
    assert listed_again.content == listed.content
    revalidated = APIClient().get(f"/api/v1/markets/cached/?as_of={settled}", HTTP_IF_NONE_MATCH=first["ETag"])
    assert revalidated.status_code == 304
    # The recent moment's answer was current only until that trade's change: it is read again.
    assert get("/api/v1/markets/cached/", as_of=iso(recent)).json()["volume"] == "20.000000"


def test_the_schema_documents_as_of_on_the_list_the_detail_and_the_quote():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    paths = response.json()["paths"]
    for path in ("/api/v1/markets/", "/api/v1/markets/{slug}/", "/api/v1/markets/{slug}/quote/"):
        (as_of,) = [p for p in paths[path]["get"]["parameters"] if p["name"] == "as_of"]
        assert as_of["in"] == "query"
        assert as_of["schema"] == {"type": "string", "format": "date-time"}
        assert "400" in paths[path]["get"]["responses"]


def test_a_list_page_as_of_takes_the_same_queries_for_one_market_or_many(
    make_market, make_user, staff, start, isolated_cache
):
    trader = make_user()

    def queries_for_page() -> int:
        isolated_cache()
        with CaptureQueriesContext(connection) as captured:
            response = get("/api/v1/markets/", as_of=iso(start + 5 * HOUR), page_size="100")
        assert response.status_code == 200
        return len(captured)

    first = make_market("first-of-many", created_by=staff, now=start)
    trade(trader, first, "YES", "buy", start + HOUR, amount="5")
    one = queries_for_page()
    for number in range(12):
        market = make_market(f"one-of-many-{number}", created_by=staff, now=start)
        trade(trader, market, "NO", "buy", start + 2 * HOUR, amount="3")
        market_halt(market=market, user=staff, reason="Checking.", now=start + 3 * HOUR)
    # Markets opened in the past (as demo data is made): the page cached for that settled moment predates them.
    isolated_cache()
    assert len(get("/api/v1/markets/", as_of=iso(start + 5 * HOUR), page_size="100").json()["results"]) == 13
    assert queries_for_page() == one
