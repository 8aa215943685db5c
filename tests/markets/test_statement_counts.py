"""The statements a trade and a cached read send to PostgreSQL, pinned: a change that adds a round trip to
either path must change this number on purpose (docs/benchmarks.md measures what each one costs)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from markets.models import Market

pytestmark = pytest.mark.django_db

# A trade by API key (authenticated from the key cache, the market's id from the cached snapshot: no statement
# for either), in markets.services.trading: the market's lock and one read of the wallet (locked), outcomes,
# positions, last price point and idempotency key (two statements sent in one round trip); one statement for
# every write (ledger transaction, entries, balances, trade, position, outcomes, volume, price point, key).
# The response is built from what the service returns, not read back.
# Inside a test's transaction each atomic block is a SAVEPOINT/RELEASE pair, counted here; in production they
# are BEGIN/COMMIT, which the count does not see (BEGIN goes with the lock and the read).
TRADE_STATEMENTS = 5
# A cached read: answered from Redis alone.
CACHED_READ_STATEMENTS = 0


@pytest.fixture
def market(make_market):
    return make_market(
        slug="counted",
        question="Is every statement counted?",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("A", "A"), ("B", "B"), ("C", "C")],
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=3),
    )


@pytest.fixture
def api(make_user):
    _key, raw_key = api_key_create(user=make_user("counter"), name="counting")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def trade(api, key):
    return api.post(
        "/api/v1/markets/counted/trades/",
        {"outcome": "A", "side": "buy", "amount": "5"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=key,
    )


def test_a_trade_sends_a_fixed_number_of_statements(api, market):
    assert trade(api, "first").status_code == 201  # the key's last use is written once a minute
    with CaptureQueriesContext(connection) as queries:
        response = trade(api, "second")
    assert response.status_code == 201, response.content
    assert len(queries) == TRADE_STATEMENTS, "\n".join(query["sql"] for query in queries)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/markets/counted/",
        "/api/v1/markets/",
        "/api/v1/markets/counted/quote/?outcome=A&side=buy&amount=10",
        "/api/v1/markets/counted/history/",
    ],
)
def test_a_cached_read_sends_no_statement(market, path):
    client = APIClient()
    assert client.get(path).status_code == 200  # fills the cache
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200
    assert len(queries) == CACHED_READ_STATEMENTS, "\n".join(query["sql"] for query in queries)


def test_resting_orders_the_trade_does_not_cross_cost_no_statement(api, market, make_user):
    """The issue's rule: orders must not slow a trade that crosses none (the best limits come with the outcomes)."""
    from decimal import Decimal

    from markets.services.orders import OrderRequest, order_place

    resting = make_user("resting")
    for outcome, limit in (("B", "0.10"), ("C", "0.05"), ("B", "0.20")):
        order_place(
            user=resting,
            market=market,
            request=OrderRequest(outcome=outcome, side="buy", limit=Decimal(limit), size=Decimal("10")),
        )
    assert trade(api, "first").status_code == 201
    with CaptureQueriesContext(connection) as queries:
        response = trade(api, "second")
    assert response.status_code == 201, response.content
    assert len(queries) == TRADE_STATEMENTS, "\n".join(query["sql"] for query in queries)


# A trade whose prices cross resting orders: the trade's statements, then the fill pass's, however many orders it
# fills (markets.services.fills): one read of the crossed orders (which of them are standing forecasts' comes with
# it), the pass's one write statement (every fill's trade, ledger transaction and price point, and the positions,
# balances, orders, outcomes and volume they move), and the best limits' refresh (an order was filled).
CROSSING_TRADE_STATEMENTS = TRADE_STATEMENTS + 3
# A trade whose fills are standing forecasts' orders: the same, and their re-arming (markets.services.standing),
# however many it re-arms: one statement that adds the fills to their `spent` and reads them with their orders,
# free shares and locked wallets, and one that writes every side that grows (old orders ended, new ones resting,
# their reserves moved through the ledger and the positions); the best limits are refreshed once for both.
CROSSING_STANDING_STATEMENTS = CROSSING_TRADE_STATEMENTS + 2


@pytest.mark.parametrize("crossed", [1, 10])
def test_a_fill_pass_sends_a_fixed_number_of_statements(api, market, make_user, crossed):
    """The issue's gap: a pass wrote each fill with a statement of its own (10-15 ms a fill under the lock). Buy
    orders for B and sell orders for A (held by their owners), some owners with two orders on one outcome, all
    crossed by one buy of A: the same statements for one fill as for ten."""
    from decimal import Decimal

    from markets.models import LimitOrder, Trade
    from markets.services.orders import OrderRequest, order_place
    from markets.services.trading import trade_execute
    from markets.trade_request import TradeRequest

    buyers = [make_user(f"buyer{n}") for n in range(3)]
    sellers = [make_user(f"seller{n}") for n in range(2)]
    for seller in sellers:
        trade_execute(user=seller, market=market, request=TradeRequest(outcome="A", side="buy", amount=Decimal("5")))
    assert trade(api, "first").status_code == 201
    # B is near 28%, A near 42%: the buys rest below B's price, the sells above A's.
    books = [("B", "buy", f"0.{25 - n:02d}", "1") for n in range(7)] + [
        ("A", "sell", f"0.{45 + 5 * n}", "2") for n in range(3)
    ]
    for n, (outcome, side, limit, size) in enumerate(books[:crossed]):
        owners = buyers if side == "buy" else sellers
        order_place(
            user=owners[n % len(owners)],
            market=market,
            request=OrderRequest(outcome=outcome, side=side, limit=Decimal(limit), size=Decimal(size)),
        )
    assert not Trade.objects.filter(market=market, order__isnull=False).exists()
    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/api/v1/markets/counted/trades/",
            {"outcome": "A", "side": "buy", "amount": "150"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="crossing",
        )
    assert response.status_code == 201, response.content
    assert Trade.objects.filter(market=market, order__isnull=False).count() == crossed
    assert not LimitOrder.objects.filter(market=market, status="open", filled_shares=0).exists()
    assert len(queries) == CROSSING_TRADE_STATEMENTS, "\n".join(query["sql"] for query in queries)


@pytest.mark.parametrize("crossed", [1, 10])
def test_re_arming_standing_forecasts_sends_a_fixed_number_of_statements(api, market, make_user, crossed):
    """The issue's gap: each crossed standing forecast re-armed with statements of its own under the market's lock
    (about ten: its `spent`, its orders, its wallet's lock, its free shares, the old order's end and the new one's
    reserve). Standing forecasts on B of ten owners, their buy sides resting below B's price, all crossed by one
    buy of A: each fills, and each re-arms its sell side with the shares it bought, in the same statements for one
    as for ten."""
    from decimal import Decimal

    from markets.models import LimitOrder, Trade
    from markets.services.standing import StandingRequest, standing_forecast_create

    assert trade(api, "first").status_code == 201
    # B is near 32%: buy limits from 30% down, sell limits from 32% down, half a point apart: none crossed yet, and
    # none of their owners holds B.
    forecasts = [
        standing_forecast_create(
            user=make_user(f"stander{n}"),
            market=market,
            request=StandingRequest(
                outcome="B", belief=Decimal("0.31") - Decimal(n) / 200, band_points=Decimal("1"), budget=Decimal("2")
            ),
        ).forecast
        for n in range(crossed)
    ]
    assert not Trade.objects.filter(market=market, order__isnull=False).exists()
    assert not LimitOrder.objects.filter(market=market, side="sell").exists()
    with CaptureQueriesContext(connection) as queries:
        response = api.post(
            "/api/v1/markets/counted/trades/",
            {"outcome": "A", "side": "buy", "amount": "150"},
            format="json",
            HTTP_IDEMPOTENCY_KEY="crossing",
        )
    assert response.status_code == 201, response.content
    assert Trade.objects.filter(market=market, order__standing_forecast__in=forecasts).count() == crossed
    for forecast in forecasts:
        sell = LimitOrder.objects.get(standing_forecast=forecast, side="sell", status="open")
        assert sell.reserved_shares == sell.remaining > 0
    assert len(queries) == CROSSING_STANDING_STATEMENTS, "\n".join(query["sql"] for query in queries)
