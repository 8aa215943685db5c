"""One read path per concept for the website and the API (issue 9, item 3): the same market list for the same
search and sort, one position value and one average price with one rounding rule, one "tradeable" rule, and one
cache-failure policy."""

from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from unittest import mock

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.money import CREDIT_QUANTUM, average_price, position_value
from config.core import cache as shared_cache
from markets.models import Market, Outcome, Position
from markets.selectors.listing import SORTS
from markets.services import market_close, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def markets(make_market, make_user):
    trader = make_user("trader")
    made = [
        make_market(
            "rutte-nato",
            question="Will Mark Rutte lead NATO?",
            category="politics",
            closes_at=timezone.now() + timedelta(days=40),
        ),
        make_market(
            "rain-tomorrow",
            question="Will it rain?",
            description="NATO summit weather.",
            closes_at=timezone.now() + timedelta(days=10),
        ),
        make_market("nato-budget", question="Will the budget pass?", closes_at=timezone.now() + timedelta(days=20)),
        make_market(
            "elections", question="Who wins?", category="nato affairs", closes_at=timezone.now() + timedelta(days=30)
        ),
        make_market("quiet", question="Nothing here?", closes_at=timezone.now() + timedelta(days=50)),
    ]
    for market, amount in zip(made, ["5", "50", "20", "1", "9"], strict=True):
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount=amount))
    return made


@pytest.mark.parametrize("sort", list(SORTS))
@pytest.mark.parametrize("search", ["nato", "", "rain"])
def test_the_site_and_the_api_list_the_same_markets_in_the_same_order(client, markets, search, sort):
    page = client.get("/", {"q": search, "sort": sort})
    site = [card.market.slug for card in page.context["cards"]]
    api = APIClient().get("/api/v1/markets/", {"search": search, "ordering": SORTS[sort]}).json()
    assert site == [row["slug"] for row in api["results"]]
    if search == "nato":  # a match in the question, the description, the category and the slug alike
        assert set(site) == {"rutte-nato", "rain-tomorrow", "nato-budget", "elections"}


def test_the_site_shows_open_markets_first_the_api_in_its_order(client, markets):
    market_close(market=markets[0])
    site = [card.market.slug for card in client.get("/", {"sort": "volume"}).context["cards"]]
    assert site[-1] == "rutte-nato"  # the one closed market, after every open one
    api = APIClient().get("/api/v1/markets/", {"ordering": "-volume"}).json()
    assert [row["slug"] for row in api["results"]][-1] == "elections"  # the smallest volume


def test_one_rounding_rule_for_a_value_and_an_average_price():
    # 3 micro-shares at 50%: 1.5 micro-credits. Banker's rounding said 2, the API said 1; the ledger pays 1.
    assert position_value(Decimal("0.000003"), 0.5) == Decimal("0.000001")
    assert average_price(Decimal("5.124948"), Decimal("10")) == Decimal("0.512494")
    assert average_price(Decimal("1"), Decimal("0")) == 0


def test_the_portfolio_page_and_the_api_value_a_position_alike(make_market, client, make_user):
    market = make_market("rutte-nato", question="Will Mark Rutte lead NATO?")
    trader = make_user("holder")
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="12.345671"))
    shares = Position.objects.get(user=trader).shares
    # A probability where rounding down and half-even differ for these shares.
    probability = next(
        p / 10_000
        for p in range(5_000, 10_000)
        if (shares * Decimal(repr(p / 10_000))).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_EVEN)
        != position_value(shares, p / 10_000)
    )
    Outcome.objects.filter(market=market, code="YES").update(probability=probability)
    expected = position_value(shares, probability)

    client.force_login(trader)
    [page_position] = client.get("/portfolio/").context["portfolio"].open_positions
    [market_position] = client.get("/markets/rutte-nato/").context["positions"]
    api = APIClient()
    api.force_authenticate(trader)
    [api_position] = api.get("/api/v1/me/positions/").json()["results"]
    assert page_position.value == market_position.value == Decimal(api_position["value"]) == expected


def test_tradeable_means_open_and_before_the_close_time():
    now = timezone.now()
    market = Market(status=Market.Status.OPEN, closes_at=now + timedelta(minutes=1))
    assert market.is_tradeable(now)
    assert not market.is_tradeable(now + timedelta(minutes=1))  # the clock decides before the close task runs
    market.status = Market.Status.CLOSED
    assert not market.is_tradeable(now)


def test_an_unreachable_cache_is_a_miss_and_a_dropped_write(client, markets):
    with mock.patch.object(shared_cache, "cache") as broken:
        for method in ("get", "set", "add", "delete", "incr"):
            getattr(broken, method).side_effect = ConnectionError("redis is down")
        assert shared_cache.cache_get("anything") is None
        shared_cache.cache_set("anything", 1, timeout=5)
        assert shared_cache.cache_add("anything", 1, timeout=5) is None
        shared_cache.cache_delete("anything")
        assert client.get("/markets/rutte-nato/live/").status_code == 200


def test_any_other_cache_error_is_a_bug_and_is_raised():
    with mock.patch.object(shared_cache, "cache") as broken:
        broken.get.side_effect = TypeError("not an outage")
        with pytest.raises(TypeError):
            shared_cache.cache_get("anything")
