"""The website's limit orders: the order tab of the trade panel, your open orders with a cancel button on the
market page and the portfolio, the market's aggregated order book, and available versus reserved credits."""

from decimal import Decimal

import pytest

from accounts.services import wallet_get
from markets.models import LimitOrder
from markets.services.orders import OrderRequest, order_place

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(slug="paged", liquidity=100)


def test_placing_an_order_from_the_market_page(market, make_user, client):
    user = make_user()
    client.force_login(user)
    page = client.get("/markets/paged/").content.decode()
    assert "Limit order" in page
    assert "Buy at most at" in page
    response = client.post(
        "/markets/paged/orders/",
        {"order-outcome": "YES", "order-side": "buy", "order-limit": "40", "order-size": "25"},
        follow=True,
    )
    assert response.status_code == 200
    order = LimitOrder.objects.get(user=user)
    assert order.limit_probability == Decimal("0.4")
    assert order.status == "open"
    assert wallet_get(user=user).balance == Decimal("975")
    page = response.content.decode()
    assert "Buy order placed" in page
    assert "Your open orders" in page
    assert 'id="order-book"' in page


@pytest.mark.parametrize(
    ("limit", "size", "message"),
    [("0", "10", "between 0.01%"), ("100", "10", "between 0.01%"), ("40", "0", "size greater than zero")],
)
def test_a_bad_order_shows_its_error_by_the_field_and_changes_nothing(market, make_user, client, limit, size, message):
    client.force_login(make_user())
    response = client.post(
        "/markets/paged/orders/",
        {"order-outcome": "YES", "order-side": "buy", "order-limit": limit, "order-size": size},
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not LimitOrder.objects.exists()


def test_reserving_more_than_you_have_is_a_form_error(market, make_user, client):
    client.force_login(make_user())
    response = client.post(
        "/markets/paged/orders/",
        {"order-outcome": "YES", "order-side": "buy", "order-limit": "40", "order-size": "5000"},
    )
    assert response.status_code == 422
    assert "available" in response.content.decode()
    assert not LimitOrder.objects.exists()


def test_the_portfolio_shows_reserved_credits_and_cancels_an_order(market, make_user, client):
    user = make_user()
    client.force_login(user)
    order = order_place(
        user=user,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.3"), size=Decimal("40")),
    ).order
    page = client.get("/portfolio/").content.decode()
    assert "Reserved for orders" in page
    assert "40.00" in page
    assert "Open orders" in page
    response = client.post(f"/orders/{order.pk}/cancel/", {"next": "/portfolio/"}, follow=True)
    assert response.status_code == 200
    assert "Order cancelled" in response.content.decode()
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert wallet_get(user=user).balance == Decimal("1000")


def test_nobody_cancels_someone_elses_order(market, make_user, client):
    owner = make_user()
    order = order_place(
        user=owner,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.3"), size=Decimal("5")),
    ).order
    client.force_login(make_user())
    assert client.post(f"/orders/{order.pk}/cancel/").status_code == 404
    order.refresh_from_db()
    assert order.status == "open"


def test_the_book_is_anonymous_on_the_page(market, make_user, client):
    owner = make_user("secretive")
    order_place(
        user=owner,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.3"), size=Decimal("5")),
    )
    page = client.get("/markets/paged/").content.decode()
    assert "Buy below" in page
    assert "secretive" not in page
