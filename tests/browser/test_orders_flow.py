"""Limit orders in the browser: the trade panel's order tab ("buy at most at 40%"), the order resting in the
market's book and in your open orders, the portfolio's available and reserved credits, and cancelling."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.services import wallet_get
from markets.models import LimitOrder
from tests.browser.site import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_place_an_order_see_it_rest_then_cancel_it_from_the_portfolio(live_server, page, site):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    panel = page.locator("#order-panel")
    expect(panel.get_by_role("heading", name="Limit order")).to_be_visible()
    panel.get_by_label("Order").select_option("buy")
    panel.get_by_label("Outcome").select_option("YES")
    panel.get_by_label("Limit (%)").fill("5")
    panel.get_by_label("Size").fill("25")
    panel.get_by_role("button", name="Place order").click()

    expect(page.get_by_role("status").or_(page.locator(".flash-success")).first).to_contain_text("Buy order placed")
    order = LimitOrder.objects.get(user__username="trader")
    assert order.status == "open"
    assert order.limit_probability == Decimal("0.05")
    book = page.locator("#order-book")
    expect(book).to_contain_text("Buy below")
    expect(book).to_contain_text("5.0%")
    expect(page.locator("#order-panel .order-row")).to_have_count(1)

    page.goto(f"{live_server.url}/portfolio/")
    expect(page.locator("#reserved-balance")).to_contain_text("25.00")
    page.locator(f"tr[data-order='{order.pk}']").get_by_role("button", name="Cancel").click()
    expect(page.locator("body")).to_contain_text("Order cancelled")
    expect(page.locator("#reserved-balance")).to_contain_text("0.00")
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert wallet_get(user=order.user).balance >= Decimal("25")


def test_a_bad_limit_is_shown_by_its_field(live_server, page, site):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    panel = page.locator("#order-panel")
    panel.get_by_label("Limit (%)").fill("100")
    panel.get_by_label("Size").fill("10")
    panel.get_by_role("button", name="Place order").click()
    expect(page.locator("#order-panel")).to_contain_text("Enter a limit between 0.01% and 99.99%.")
    assert not LimitOrder.objects.exists()
