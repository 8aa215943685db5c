"""A standing forecast from the market page: state it, see it listed (and on the profile), a refusal next to its
field, cancel it."""

import pytest
from playwright.sync_api import expect

from markets.models import LimitOrder, StandingForecast
from tests.browser.site import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_state_a_standing_forecast_see_it_and_cancel_it(live_server, page, site):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    panel = page.locator("#standing-panel")
    expect(panel.get_by_role("heading", name="Standing forecast")).to_be_visible()

    panel.get_by_label("On outcome").select_option("YES")
    panel.get_by_label("I believe (%)").fill("99")
    panel.get_by_label("Within (points)").fill("3")
    panel.get_by_label("Up to (credits)").fill("40")
    panel.get_by_role("button", name="Set standing forecast").click()
    expect(page.locator("#standing-panel [role=alert]")).to_contain_text("choose a narrower band")
    # What was typed stays.
    expect(page.locator("#standing-panel").get_by_label("Up to (credits)")).to_have_value("40")
    assert not StandingForecast.objects.exists()

    panel = page.locator("#standing-panel")
    panel.get_by_label("I believe (%)").fill("20")
    panel.get_by_role("button", name="Set standing forecast").click()
    expect(page.locator(".messages")).to_contain_text("buying below 17.00%, selling above 23.00%")
    row = page.locator(".standing-row")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("Yes 20.0%")
    forecast = StandingForecast.objects.get(user__username="trader")
    # The price was above the band and the trader holds Yes: the sell side sold down to 23% at once.
    assert forecast.spent < 0
    assert LimitOrder.objects.filter(standing_forecast=forecast, status="open").exists()

    page.goto(f"{live_server.url}/users/trader/")
    expect(page.locator(".standing-beliefs")).to_contain_text("kept within 3 points")

    page.goto(f"{live_server.url}/markets/rutte-nato/")
    page.locator(".standing-row").get_by_role("button", name="Cancel").click()
    expect(page.locator(".messages")).to_contain_text("Standing forecast cancelled")
    expect(page.locator(".standing-row")).to_contain_text("cancelled (cancelled by you)")
    expect(page.locator(".standing-row").get_by_role("button", name="Cancel")).to_have_count(0)
    forecast.refresh_from_db()
    assert forecast.status == StandingForecast.Status.CANCELLED
    assert not LimitOrder.objects.filter(status="open").exists()
