"""A new visitor signs up, trades on the Rutte market and sees the page follow, in real Chromium."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import Account, User
from markets.models import Position
from tests.browser.site import seed_markets, settled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def wait_for_preview(page, text):
    expect(page.locator("#trade-preview")).to_contain_text(text)


def test_signup_trade_by_amount_and_forecast_sell_and_overspend(make_user, make_market, live_server, page, screenshot):
    rutte = seed_markets(make_market, make_user)
    page.goto(f"{live_server.url}/accounts/signup/?next=/markets/{rutte.slug}/")
    page.get_by_label("Username").fill("newcomer")
    page.get_by_label("Password", exact=True).fill("a-long-password-9")
    page.get_by_label("Password again").fill("a-long-password-9")
    screenshot("01-signup")
    page.get_by_role("button", name="Sign up").click()

    expect(page).to_have_url(re.compile(rf"/markets/{rutte.slug}/$"))
    expect(page.locator("#nav-balance")).to_contain_text("1,000.00")
    expect(page.locator("#price-chart[data-ready=true] canvas")).to_be_visible()
    screenshot("02-market-chart")

    # Buy by amount: the preview shows the cost before confirming.
    page.get_by_label("Trade by").select_option("amount")
    page.locator("input[name=value]").fill("100")
    wait_for_preview(page, "You pay")
    wait_for_preview(page, "100.00 cr")
    screenshot("03-preview-amount")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator(".flash-success")).to_contain_text("Bought")
    expect(page.locator("#nav-balance")).not_to_contain_text("1,000.00")
    expect(page.locator("#my-position")).to_contain_text("Yes")
    screenshot("04-after-amount-trade")
    user = User.objects.get(username="newcomer")
    assert Account.objects.get(user=user).balance < Decimal("1000")
    # The trade swapped in a new panel: type only once htmx has wired up its preview.
    settled(page)

    # Buy by forecast: "I think 80%" moves the price to 80%.
    page.get_by_label("Trade by").select_option("probability")
    page.locator("input[name=value]").fill("80")
    wait_for_preview(page, "80.0%")
    screenshot("05-preview-forecast")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator(".flash-success")).to_contain_text("Bought")
    expect(page.locator("#live-region .outcome-prob[data-outcome=YES]")).to_have_text("80.0%")
    screenshot("06-after-forecast-trade")
    held = Position.objects.get(user=user, outcome__code="YES").shares
    settled(page)

    # Sell part of the position by shares.
    page.locator(".side-choice label", has_text="Sell").click()
    page.get_by_label("Trade by").select_option("shares")
    page.locator("input[name=value]").fill("20")
    wait_for_preview(page, "You receive")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator(".flash-success")).to_contain_text("Sold 20.00 Yes shares")
    assert Position.objects.get(user=user, outcome__code="YES").shares == held - 20
    screenshot("07-after-sell")
    settled(page)

    # Spending more than the balance: a clear error next to the form, nothing traded.
    balance_before = Account.objects.get(user=user).balance
    page.locator(".side-choice label", has_text="Buy").click()
    page.get_by_label("Trade by").select_option("shares")
    page.locator("input[name=value]").fill("5000")
    wait_for_preview(page, "costs more than your balance")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator("#trade-panel [role=alert]").first).to_contain_text("your balance is")
    assert Account.objects.get(user=user).balance == balance_before
    screenshot("08-insufficient-funds")

    page.goto(f"{live_server.url}/portfolio/")
    expect(page.locator("h1")).to_have_text("Portfolio")
    expect(page.locator("#open-title")).to_be_visible()
    screenshot("09-portfolio")
    page.goto(f"{live_server.url}/")
    expect(page.locator(".market-card")).to_have_count(3)
    screenshot("10-markets-list")
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/markets/{rutte.slug}/")
    expect(page.locator("#price-chart[data-ready=true] canvas")).to_be_visible()
    screenshot("11-market-phone")
