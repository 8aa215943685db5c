"""The limit-order API: place (with Idempotency-Key), the aggregated book, your orders, cancel; errors name fields."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from markets.models import LimitOrder, Trade
from tests.markets.order_helpers import key_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(slug="ordered", liquidity=100)


def place(client, body, key=None):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post("/api/v1/markets/ordered/orders/", body, format="json", **extra)


def test_placing_an_order_rests_it_and_shows_available_and_reserved(market, make_user):
    client = key_client(make_user())
    response = place(client, {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "50"})
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["order"]["status"] == "open"
    assert body["order"]["limit"] == "0.4000"
    assert body["order"]["reserved_credits"] == "50.000000"
    assert body["trade_id"] is None
    assert body["available"] == "950.000000"
    assert body["reserved"] == "50.000000"
    me = client.get("/api/v1/me/").json()
    assert (me["available"], me["reserved"]) == ("950.000000", "50.000000")


def test_the_marketable_part_trades_at_once(market, make_user):
    client = key_client(make_user())
    body = place(client, {"outcome": "YES", "side": "buy", "limit": "0.6", "size": "50"}).json()
    trade = Trade.objects.get(pk=body["trade_id"])
    assert trade.order_id == body["order"]["id"]
    assert trade.probabilities_after[0] <= 0.6


def test_an_idempotency_key_places_once(market, make_user):
    client = key_client(make_user())
    body = {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "50"}
    first = place(client, body, key="order-1")
    again = place(client, body, key="order-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["order"]["id"] == first.json()["order"]["id"]
    assert LimitOrder.objects.count() == 1
    conflict = place(client, {**body, "size": "51"}, key="order-1")
    assert conflict.status_code == 409


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "1"}, "limit"),
        ({"limit": "-0.2"}, "limit"),
        ({"limit": "abc"}, "limit"),
        ({"size": "0"}, "size"),
        ({"size": "-5"}, "size"),
        ({"side": "hold"}, "side"),
        ({"outcome": "MAYBE"}, "outcome"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_bad_input_is_a_400_naming_the_field_and_changes_nothing(market, make_user, body, field):
    client = key_client(make_user())
    response = place(client, {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "10", **body})
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in str(error), error
    assert not LimitOrder.objects.exists()


def test_reserving_more_than_you_have_is_refused(market, make_user):
    client = key_client(make_user())
    too_much = place(client, {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "1000.5"})
    assert too_much.status_code == 422
    assert too_much.json()["error"]["code"] == "insufficient_funds"
    unheld = place(client, {"outcome": "YES", "side": "sell", "limit": "0.8", "size": "1"})
    assert unheld.status_code == 422
    assert unheld.json()["error"]["code"] == "insufficient_shares"
    assert not LimitOrder.objects.exists()


def test_the_book_is_aggregated_and_anonymous(market, make_user):
    for user, limit, size in (
        (make_user("ann"), "0.4", "10"),
        (make_user("bob"), "0.4", "15"),
        (make_user(), "0.3", "5"),
    ):
        assert (
            place(key_client(user), {"outcome": "YES", "side": "buy", "limit": limit, "size": size}).status_code == 201
        )
    response = APIClient().get("/api/v1/markets/ordered/orders/")
    assert response.status_code == 200
    levels = response.json()
    assert [(level["limit"], level["size"], level["orders"]) for level in levels] == [
        ("0.4000", "25.000000", 2),
        ("0.3000", "5.000000", 1),
    ]
    assert "ann" not in response.content.decode()
    assert levels[0]["unit"] == "credits"


def test_your_orders_and_cancelling_one(market, make_user):
    owner, stranger = make_user(), make_user()
    client = key_client(owner)
    order_id = place(client, {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "10"}).json()["order"]["id"]
    place(client, {"outcome": "NO", "side": "buy", "limit": "0.3", "size": "10"})
    listed = client.get("/api/v1/me/orders/?status=open").json()
    assert len(listed["results"]) == 2
    assert key_client(stranger).delete(f"/api/v1/orders/{order_id}/").status_code == 404
    cancelled = client.delete(f"/api/v1/orders/{order_id}/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert client.delete(f"/api/v1/orders/{order_id}/").status_code == 409
    assert len(client.get("/api/v1/me/orders/?status=open").json()["results"]) == 1
    assert client.get("/api/v1/me/").json()["reserved"] == "10.000000"


def test_placing_needs_a_login(market):
    response = APIClient().post("/api/v1/markets/ordered/orders/", {}, format="json")
    assert response.status_code in (401, 403)


def test_an_expiry_in_the_future_is_kept(market, make_user):
    client = key_client(make_user())
    when = timezone.now() + timedelta(days=2)
    body = place(
        client, {"outcome": "YES", "side": "buy", "limit": "0.4", "size": "10", "expires_at": when.isoformat()}
    )
    assert body.status_code == 201
    assert LimitOrder.objects.get().expires_at == when
    assert LimitOrder.objects.get().size == Decimal("10")


def test_placing_orders_is_rate_limited_per_account(market, make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "order": "2/min"},
    }
    client = key_client(make_user())
    body = {"outcome": "YES", "side": "buy", "limit": "0.3", "size": "1"}
    assert [place(client, body).status_code for _ in range(3)] == [201, 201, 429]
    assert LimitOrder.objects.count() == 2
