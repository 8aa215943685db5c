"""Which limit order a trade executed (Trade.order) and whether it was a resting order's fill (Trade.fill): written
by the order's marketable part and by the fill pass, shown by the trade lists (API and website) and the admin,
checked by reconciliation, and backfilled by the migration for the fills written before the column."""

import json
from datetime import timedelta
from decimal import Decimal
from importlib import import_module
from io import StringIO
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import user_follow
from markets.models import LimitOrder, Trade
from markets.services import markets_reconcile, trade_execute
from markets.services.orders import OrderRequest, order_place
from markets.services.standing import StandingRequest, standing_forecast_create
from tests.factories import trade_request
from tests.markets.order_helpers import key_client
from tests.redis_namespace import namespace_delete
from tests.stream_server import stream_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(slug="linked", liquidity=100)


def place(user, market, limit, size="20", side="buy"):
    request = OrderRequest(outcome="YES", side=side, limit=Decimal(limit), size=Decimal(size))
    return order_place(user=user, market=market, request=request)


@pytest.fixture
def filled(market, make_user):
    """Ana's buy order at 60%: its marketable part trades at once (the price is 50%), then Bo buys NO, the price
    of YES falls below 60% and the rest fills. Returns (ana, bo, order, marketable trade, fill trade)."""
    ana, bo = make_user("ana"), make_user("bo")
    placed = place(ana, market, "0.6", size="40")
    trade_execute(user=bo, market=market, request=trade_request("NO", "buy", amount="15"))
    marketable = Trade.objects.get(pk=placed.trade_id)
    fill = Trade.objects.get(order_id=placed.order.pk, fill=True)
    return ana, bo, placed.order, marketable, fill


def test_a_fill_and_an_orders_marketable_part_name_the_order_and_only_the_fill_is_a_fill(filled):
    ana, bo, order, marketable, fill = filled
    assert (marketable.order_id, marketable.fill, marketable.user_id) == (order.pk, False, ana.pk)
    assert (fill.order_id, fill.fill, fill.user_id) == (order.pk, True, ana.pk)
    trigger = Trade.objects.get(user=bo)
    assert (trigger.order_id, trigger.fill) == (None, False)
    # The order's filled amounts are its trades', the marketable part included.
    order.refresh_from_db()
    assert order.filled_shares == marketable.shares + fill.shares
    assert order.filled_amount == marketable.amount + fill.amount
    assert markets_reconcile() == []


def test_a_standing_forecasts_fills_name_their_order(market, make_user):
    owner, trader = make_user(), make_user()
    standing_forecast_create(
        user=owner,
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.5"), band_points=Decimal(3), budget=Decimal(50)),
    )
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="20"))
    fills = list(Trade.objects.filter(user=owner).select_related("order"))
    assert fills, "the price fell past the standing forecast's buy limit"
    assert all(trade.fill and trade.order and trade.order.standing_forecast_id is not None for trade in fills)
    assert markets_reconcile() == []


def test_the_market_trade_list_shows_fill_and_order(filled):
    _ana, _bo, order, marketable, fill = filled
    response = APIClient().get("/api/v1/markets/linked/trades/")
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["results"]}
    assert {key: rows[fill.pk][key] for key in ("fill", "order", "username")} == {
        "fill": True,
        "order": order.pk,
        "username": "ana",
    }
    assert (rows[marketable.pk]["fill"], rows[marketable.pk]["order"]) == (False, order.pk)
    trigger = next(row for row in rows.values() if row["username"] == "bo")
    assert (trigger["fill"], trigger["order"]) == (False, None)
    # Nothing of the order but its id: its limit, size and what is left stay the owner's.
    assert set(rows[fill.pk]) & {"limit", "size", "remaining", "order_user"} == set()


def test_my_trades_show_fill_and_order_and_filter_by_order(filled, market, make_user):
    ana, bo, order, marketable, fill = filled
    other = place(ana, market, "0.2").order  # rests far below: no trade
    client = key_client(ana)
    mine = client.get("/api/v1/me/trades/").json()["results"]
    assert [(row["id"], row["fill"], row["order"]) for row in mine] == [
        (fill.pk, True, order.pk),
        (marketable.pk, False, order.pk),
    ]
    by_order = client.get(f"/api/v1/me/trades/?order={order.pk}").json()["results"]
    assert [row["id"] for row in by_order] == [fill.pk, marketable.pk]
    assert client.get(f"/api/v1/me/trades/?order={other.pk}").json()["results"] == []
    # Someone else's order: none of its trades are yours.
    assert key_client(bo).get(f"/api/v1/me/trades/?order={order.pk}").json()["results"] == []
    for bad in ("0", "x", str(2**63)):
        assert client.get(f"/api/v1/me/trades/?order={bad}").status_code == 400


def test_a_trade_placed_through_the_api_is_no_fill(market, make_user):
    client = key_client(make_user())
    response = client.post(
        "/api/v1/markets/linked/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
    )
    assert response.status_code == 201, response.content
    trade = response.json()["trade"]
    assert (trade["fill"], trade["order"]) == (False, None)


def test_the_schema_documents_fill_and_order():
    schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    trade = schema["components"]["schemas"]["TradeOutput"]
    assert trade["properties"]["fill"]["type"] == "boolean"
    assert trade["properties"]["order"]["nullable"] is True
    assert {"fill", "order"} <= set(trade["required"])
    me_trades = schema["paths"]["/api/v1/me/trades/"]["get"]["parameters"]
    assert any(parameter["name"] == "order" for parameter in me_trades)


def test_the_portfolio_names_the_order_and_the_market_page_marks_the_fill(filled, client):
    ana, _bo, order, _marketable, _fill = filled
    public = client.get("/markets/linked/").content.decode()
    assert public.count(">Order fill</span>") == 1
    assert f"#{order.pk}" not in public
    client.force_login(ana)
    portfolio = client.get("/portfolio/").content.decode()
    assert f">Fill of order #{order.pk}</span>" in portfolio
    assert f">Order #{order.pk}</span>" in portfolio


def test_the_feed_marks_a_followed_users_fill(filled, make_user, client):
    ana, _bo, _order, _marketable, fill = filled
    reader = make_user("reader")
    user_follow(follower=reader, followed=ana)
    client.force_login(reader)
    page = client.get("/").content.decode()
    assert page.count(">Order fill</span>") == 1
    feed = key_client(reader).get("/api/v1/me/feed/").json()["results"]
    assert [(item["trade"]["id"], item["trade"]["fill"]) for item in feed] == [
        (fill.pk, True),
        (Trade.objects.get(user=ana, fill=False).pk, False),
    ]


def test_the_admin_lists_and_filters_fills(filled, make_user, client):
    _ana, _bo, order, _marketable, fill = filled
    client.force_login(make_user(is_staff=True))
    page = client.get("/admin/markets/trade/?fill__exact=1")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"/admin/markets/limitorder/{order.pk}/change/" in html
    assert f"/admin/markets/trade/{fill.pk}/change/" in html
    assert "result_list" in html
    plain = client.get("/admin/markets/trade/?order__isempty=1").content.decode()
    assert f"/admin/markets/trade/{fill.pk}/change/" not in plain


@pytest.mark.parametrize(
    ("corrupt", "invariant"),
    [
        ("user", "trade_matches_its_order"),
        ("outcome", "trade_matches_its_order"),
        ("side", "trade_matches_its_order"),
        ("market", "trade_matches_its_order"),
        ("orphan fill", "fill_names_its_order"),
        ("filled", "order_filled_equals_trades"),
    ],
)
def test_reconciliation_catches_a_trade_that_is_not_its_orders(filled, make_market, corrupt, invariant):
    _ana, bo, order, _marketable, fill = filled
    trades = Trade.objects.filter(pk=fill.pk)
    if corrupt == "user":
        trades.update(user=bo)
    elif corrupt == "outcome":
        trades.update(outcome=fill.market.outcomes.get(code="NO"))
    elif corrupt == "side":
        trades.update(side="sell")
    elif corrupt == "market":
        elsewhere = make_market("elsewhere")
        # Moved whole, with its outcome: only its order says where it belongs.
        trades.update(market=elsewhere, outcome=elsewhere.outcomes.get(code="YES"))
    elif corrupt == "orphan fill":
        Trade.objects.filter(user=bo).update(fill=True)
    else:
        LimitOrder.objects.filter(pk=order.pk).update(filled_shares=order.filled_shares + Decimal(1))
    found = {violation.invariant for violation in markets_reconcile()}
    assert invariant in found


def test_the_migration_adds_the_column_without_a_rewrite_and_backfills_the_fills(filled):
    _ana, _bo, order, marketable, fill = filled
    sql = StringIO()
    call_command("sqlmigrate", "markets", "0012", stdout=sql)
    ddl = [line.strip() for line in sql.getvalue().splitlines() if line.strip().startswith(("ALTER", "CREATE"))]
    # A constant default: PostgreSQL stores it in the catalog, no table rewrite and no index.
    assert ddl == ['ALTER TABLE "markets_trade" ADD COLUMN "fill" boolean DEFAULT false NOT NULL;']
    # Rows written before the column read false; the backfill marks the fills, and only them.
    Trade.objects.update(fill=False)
    with connection.cursor() as cursor:
        cursor.execute(import_module("markets.migrations.0012_trade_fill").BACKFILL)
    assert set(Trade.objects.filter(fill=True).values_list("pk", flat=True)) == {fill.pk}
    assert Trade.objects.get(pk=marketable.pk).order_id == order.pk


@pytest.fixture
def stream(settings):
    settings.FORECASTLE_STREAM_KEY = stream_key()
    yield settings.FORECASTLE_STREAM_KEY
    namespace_delete(settings.REDIS_URL, settings.FORECASTLE_STREAM_KEY)


def stream_events(key: str) -> list[tuple[str, dict[str, Any]]]:
    client: Any = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return [(fields[b"event"].decode(), json.loads(fields[b"data"])) for _id, fields in client.xrange(key)]
    finally:
        client.close()


def test_a_trade_dated_by_its_caller_publishes_its_price_but_no_trade_event(
    stream, market, make_user, django_capture_on_commit_callbacks
):
    """docs/api.md, "Live stream": demo history is not news; a trade made now is."""
    trader = make_user()
    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(
            user=trader,
            market=market,
            request=trade_request("YES", "buy", amount="5"),
            now=timezone.now() - timedelta(minutes=5),
        )
    assert [kind for kind, _data in stream_events(stream)] == ["price", "status"]
    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="5"))
    kinds = [kind for kind, _data in stream_events(stream)]
    assert kinds[2:] == ["trade", "price"]
