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
