"""The read pages: markets list, market page, live fragment, portfolio, staff create/edit."""

import re
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from markets.models import Market, Resolution
from markets.services import market_close, trade_execute
from markets.services.orders import OrderRequest, order_place
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


def test_list_shows_markets_with_probability_change_and_volume(make_market, client, make_user):
    market = make_market("rutte", question="Will Mark Rutte be appointed NATO Secretary-General?")
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", amount="50"))
    make_market("next-sg", kind="multiple", question="Who will be the next NATO Secretary-General?")
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Will Mark Rutte be appointed NATO Secretary-General?" in body
    market.refresh_from_db()
    yes = market.outcomes.get(code="YES")
    assert f"{yes.probability * 100:.1f}%" in body
    assert "+" in body
    assert "pts" in body
    assert "50.00 cr" in body
    assert "Kallas" in body  # the leading options of the multiple-choice market
    assert '<svg class="sparkline' in body


def test_list_puts_open_markets_first_and_filters(make_market, client):
    closed = make_market("closed-one", question="Closed question?")
    market_close(market=closed)
    make_market("open-one", question="Open question?", category="Tech")
    body = client.get("/").content.decode()
    assert body.index("Open question?") < body.index("Closed question?")

    assert "Closed question?" not in client.get("/?status=open").content.decode()
    assert "Open question?" not in client.get("/?status=closed").content.decode()
    only_tech = client.get("/?category=tech").content.decode()
    assert "Open question?" in only_tech
    assert "Closed question?" not in only_tech
    searched = client.get("/?q=closed").content.decode()
    assert "Closed question?" in searched
    assert "Open question?" not in searched


def test_list_sorts_and_ignores_bad_parameters(make_market, client, make_user):
    small = make_market("small", question="Small volume?")
    big = make_market("big", question="Big volume?")
    user = make_user()
    trade_execute(user=user, market=big, request=trade_request("YES", "buy", amount="200"))
    trade_execute(user=user, market=small, request=trade_request("YES", "buy", amount="5"))
    body = client.get("/?sort=volume").content.decode()
    assert body.index("Big volume?") < body.index("Small volume?")
    body = client.get("/?sort=newest").content.decode()
    assert body.index("Big volume?") < body.index("Small volume?")
    response = client.get("/?sort=nonsense&status=weird&page=abc")
    assert response.status_code == 200


def test_list_htmx_returns_only_the_results(make_market, client):
    make_market("rutte")
    response = client.get("/?q=rutte", HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert b"<html" not in response.content
    assert b'id="market-results"' in response.content


def test_list_paginates(make_market, client):
    for index in range(23):
        make_market(f"market-{index}")
    first = client.get("/").content.decode()
    assert "Page 1 of 2" in first
    second = client.get("/?page=2").content.decode()
    assert second.count('class="market-card') == 3


def test_list_query_count_does_not_grow_with_markets(make_market, client, make_user, django_assert_max_num_queries):
    user = make_user()
    for index in range(3):
        market = make_market(f"few-{index}", kind="multiple" if index % 2 else "binary")
        trade_execute(user=user, market=market, request=trade_request(market.outcomes.first().code, "buy", amount="5"))
    client.force_login(user)
    # Signed in, the page also counts the unread notifications (the bell) and reads whom the user follows (the feed).
    with django_assert_max_num_queries(13) as few:
        assert client.get("/").status_code == 200
    for index in range(15):
        market = make_market(f"many-{index}", kind="multiple" if index % 2 else "binary")
        trade_execute(user=user, market=market, request=trade_request(market.outcomes.first().code, "buy", amount="5"))
    with django_assert_max_num_queries(13) as many:
        assert client.get("/").status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_drafts_are_hidden_from_visitors_and_shown_to_staff(make_market, client, make_user):
    make_market("draft-one", question="Draft question?", open_now=False)
    assert "Draft question?" not in client.get("/").content.decode()
    assert client.get("/markets/draft-one/").status_code == 404
    client.force_login(make_user(is_staff=True))
    assert "Draft question?" in client.get("/").content.decode()
    assert client.get("/markets/draft-one/").status_code == 200


def test_market_page_shows_question_criteria_prices_trades_and_position(make_market, client, make_user):
    market = make_market(
        "rutte",
        question="Will Mark Rutte be appointed NATO Secretary-General?",
        resolution_criteria="Resolves YES if it happens.",
    )
    user = make_user("alice")
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="100"))
    client.force_login(user)
    response = client.get("/markets/rutte/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Will Mark Rutte be appointed NATO Secretary-General?" in body
    assert "Resolves YES if it happens." in body
    assert 'id="price-chart"' in body
    assert 'id="chart-data" type="application/json"' in body
    assert "alice" in body  # recent trades
    assert 'id="my-position"' in body
    position = user.positions.get()
    assert f"{position.shares:,.2f}" in body
    assert "every 4s" in body  # open markets poll their prices
    assert "Place trade" in body


def test_market_page_of_unknown_market_is_404(client):
    assert client.get("/markets/nope/").status_code == 404


def test_market_page_of_closed_market_has_no_trade_form_and_does_not_poll(make_market, client):
    market = make_market("rutte")
    market_close(market=market)
    body = client.get("/markets/rutte/").content.decode()
    assert "closed for trading" in body
    assert "Place trade" not in body
    assert "every 4s" not in body


def test_market_page_shows_the_resolution(make_market, client, make_user):
    market = make_market("rutte")
    market_close(market=market)
    staff = make_user(is_staff=True)
    Resolution.objects.create(
        market=market,
        kind=Resolution.Kind.OUTCOME,
        outcome=market.outcomes.get(code="YES"),
        payouts=["1", "0"],
        reason="He was appointed.",
        created_by=staff,
        created_at=timezone.now(),
    )
    Market.objects.filter(pk=market.pk).update(status=Market.Status.RESOLVED)
    body = client.get("/markets/rutte/").content.decode()
    assert "Resolved: <strong>Yes</strong>" in body


def test_market_page_query_count_does_not_grow(
    make_market, client, make_user, django_assert_max_num_queries, isolated_cache
):
    market = make_market("rutte")
    user = make_user()
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="10"))
    client.force_login(user)
    # One of them reads the market's resolution proposals (none here: their prefetches do not run); two, its order
    # book and the reader's open orders in it; one the reader's standing forecasts on it (none here: their orders'
    # prefetch does not run).
    with django_assert_max_num_queries(20) as few:
        assert client.get("/markets/rutte/").status_code == 200
    for index in range(10):
        trade_execute(user=make_user(), market=market, request=trade_request("NO", "buy", amount="3"))
        trade_execute(user=user, market=market, request=trade_request("NO", "buy", amount="1"))
        order = OrderRequest(outcome="NO", side="buy", limit=Decimal("0.1") - Decimal(index) / 1000, size=Decimal(1))
        order_place(user=user, market=market, request=order)
    isolated_cache()  # a cold cache again, as for the first read
    with django_assert_max_num_queries(20) as many:
        assert client.get("/markets/rutte/").status_code == 200
    assert len(many.captured_queries) == len(few.captured_queries)


def test_chart_ranges(make_market, client, make_user):
    market = make_market("rutte")
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", amount="10"))
    for key in ("1d", "1w", "1m", "all", "bogus"):
        response = client.get(f"/markets/rutte/live/?range={key}")
        assert response.status_code == 200
        assert b'"series"' in response.content
    pressed = re.findall(
        r'aria-pressed="true"[^>]*>(\w+)<', client.get("/markets/rutte/live/?range=1d").content.decode()
    )
    assert pressed == ["1D"]


def test_live_fragment_is_cached_until_the_next_trade(make_market, client, make_user, django_assert_num_queries):
    market = make_market("rutte")
    client.get("/markets/rutte/live/")
    with django_assert_num_queries(1):
        response = client.get("/markets/rutte/live/")
    assert b"50.0%" in response.content
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", amount="50"))
    market.refresh_from_db()
    new_price = market.outcomes.get(code="YES").probability
    assert f"{new_price * 100:.1f}%".encode() in client.get("/markets/rutte/live/").content


def test_live_fragment_falls_back_to_the_database_when_the_cache_is_down(make_market, client):
    make_market("rutte")
    with mock.patch("config.core.cache.cache") as broken:
        broken.get.side_effect = ConnectionError("redis is down")
        response = client.get("/markets/rutte/live/")
    assert response.status_code == 200
    assert b"50.0%" in response.content


def test_live_fragment_survives_a_failing_cache_write(make_market, client):
    make_market("rutte")
    with mock.patch("config.core.cache.cache") as broken:
        broken.get.return_value = None
        broken.set.side_effect = ConnectionError("redis is down")
        assert client.get("/markets/rutte/live/").status_code == 200


def test_portfolio_requires_login(client):
    response = client.get("/portfolio/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_portfolio_shows_balance_positions_profit_and_history(make_market, client, make_user):
    user = make_user()
    market = make_market("rutte", question="Rutte question?")
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="100"))
    trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="50"))
    client.force_login(user)
    response = client.get("/portfolio/")
    assert response.status_code == 200
    body = response.content.decode()
    balance = user.wallet.__class__.objects.get(user=user).balance
    assert f"{balance:,.2f}" in body
    assert "Rutte question?" in body
    assert "Unrealised profit" in body
    assert "Realised profit" in body
    portfolio = response.context["portfolio"]
    assert len(portfolio.open_positions) == 1
    position = portfolio.open_positions[0]
    # Selling half of what was bought releases about half the cost basis.
    assert position.cost_basis < Decimal("100")
    assert position.cost_basis > Decimal("40")
    assert len(response.context["trades"].object_list) == 2


def test_portfolio_shows_resolved_markets_with_payout_hook(make_market, client, make_user):
    user = make_user()
    market = make_market("rutte", question="Resolved question?")
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="10"))
    Market.objects.filter(pk=market.pk).update(status=Market.Status.RESOLVED)
    client.force_login(user)
    response = client.get("/portfolio/")
    body = response.content.decode()
    assert "Resolved question?" in body
    assert "Awaiting settlement" in body
    assert response.context["portfolio"].open_positions == []


def test_portfolio_query_count_does_not_grow_with_positions(
    make_market, client, make_user, django_assert_max_num_queries
):
    user = make_user()
    client.force_login(user)
    first = make_market("m-0")
    trade_execute(user=user, market=first, request=trade_request("YES", "buy", amount="5"))
    # Two of them read the reserved credits and the open orders.
    with django_assert_max_num_queries(14) as few:
        assert client.get("/portfolio/").status_code == 200
    for index in range(1, 12):
        market = make_market(f"m-{index}")
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="5"))
        order = OrderRequest(outcome="NO", side="buy", limit=Decimal("0.2"), size=Decimal(1))
        order_place(user=user, market=market, request=order)
        if index % 3 == 0:
            Market.objects.filter(pk=market.pk).update(status=Market.Status.RESOLVED)
    Market.objects.filter(pk=first.pk).update(status=Market.Status.RESOLVED)
    with django_assert_max_num_queries(14) as many:
        assert client.get("/portfolio/").status_code == 200
    assert len(many.captured_queries) <= len(few.captured_queries) + 2  # the finished-markets reads


def test_staff_creates_a_binary_and_a_multiple_choice_market(client, make_user):
    client.force_login(make_user(is_staff=True))
    assert client.get("/markets/new/").status_code == 200
    closes = (timezone.now() + timedelta(days=10)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/markets/new/",
        {"question": "Will it rain?", "kind": "binary", "liquidity": "100", "closes_at": closes},
    )
    assert response.status_code == 302
    assert response["Location"] == "/markets/will-it-rain/"
    assert Market.objects.get(slug="will-it-rain").status == Market.Status.OPEN
    response = client.post(
        "/markets/new/",
        {
            "question": "Who will be the next NATO Secretary-General?",
            "slug": "next-sg",
            "kind": "multiple",
            "outcomes": "Rutte\nKallas\nOther",
            "initial_probabilities": "60, 30, 10",
            "liquidity": "200",
            "closes_at": closes,
            "category": "Politics",
        },
    )
    assert response.status_code == 302
    market = Market.objects.get(slug="next-sg")
    assert [o.label for o in market.outcomes.all()] == ["Rutte", "Kallas", "Other"]
    assert round(market.outcomes.get(code="RUTTE").probability, 6) == 0.6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"question": "", "kind": "binary"}, "This field is required."),
        (
            {"question": "Past?", "kind": "binary", "closes_at": "2001-01-01T00:00"},
            "The close time must be in the future.",
        ),
        ({"question": "One option?", "kind": "multiple", "outcomes": "Only"}, "List at least two options"),
        ({"question": "Bad split?", "kind": "binary", "initial_probabilities": "20, 20"}, "must sum to 1"),
        ({"question": "Words?", "kind": "binary", "initial_probabilities": "a, b"}, "Enter percentages"),
    ],
)
def test_staff_create_errors_are_shown(client, make_user, data, message):
    client.force_login(make_user(is_staff=True))
    payload = {"liquidity": "100", "closes_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")}
    payload.update(data)
    response = client.post("/markets/new/", payload)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not Market.objects.exists()


def test_duplicate_slug_is_a_form_error(make_market, client, make_user):
    make_market("rutte")
    client.force_login(make_user(is_staff=True))
    closes = (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    response = client.post(
        "/markets/new/",
        {"question": "Again?", "slug": "rutte", "kind": "binary", "liquidity": "100", "closes_at": closes},
    )
    assert response.status_code == 422
    assert "already exists" in response.content.decode()


def test_non_staff_cannot_create_or_edit(make_market, client, make_user):
    make_market("rutte")
    client.force_login(make_user())
    assert client.get("/markets/new/").status_code == 302
    assert client.post("/markets/rutte/edit/", {"question": "Hacked?"}).status_code == 302
    assert Market.objects.get(slug="rutte").question != "Hacked?"


def test_staff_edits_text_fields(make_market, client, make_user):
    make_market("rutte")
    client.force_login(make_user(is_staff=True))
    assert client.get("/markets/rutte/edit/").status_code == 200
    response = client.post(
        "/markets/rutte/edit/",
        {"question": "Edited?", "description": "New", "resolution_criteria": "New criteria", "category": "X"},
    )
    assert response.status_code == 302
    market = Market.objects.get(slug="rutte")
    assert (market.question, market.resolution_criteria, market.category) == ("Edited?", "New criteria", "X")
    response = client.post("/markets/rutte/edit/", {"question": "   "})
    assert response.status_code == 422
    assert Market.objects.get(slug="rutte").question == "Edited?"
