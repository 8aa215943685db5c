"""Staff work a live market from its page in real Chromium: halt (traders see why), resume, add liquidity,
add an outcome, clarify the criteria; each leaves its line in the public market log, and the page stays
accessible with the controls, the halt notice and a revision on it."""

from decimal import Decimal

import pytest
from playwright.sync_api import expect

from markets.models import Market, MarketEvent
from tests.browser.site import PASSWORD, axe_violations, describe, login
from tests.markets.settlement_helpers import buy

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_staff_halt_resume_deepen_extend_and_clarify_from_the_market_page(make_user, make_market, live_server, page):
    make_user("staffer", password=PASSWORD, is_staff=True)
    make_user("trader", password=PASSWORD)
    market = make_market("next-sg", question="Who will be the next NATO Secretary-General?", kind="multiple")
    buy(make_user("early"), market, "RUTTE", "40")
    url = f"{live_server.url}/markets/{market.slug}/"

    login(page, live_server.url, "staffer")
    page.goto(url)
    controls = page.locator("#staff-controls-title")
    expect(controls).to_be_visible()

    # Halt, with a reason.
    page.locator("#control-halt summary").click()
    page.locator("#control-halt").get_by_label("Reason").fill("Waiting for the North Atlantic Council's statement.")
    page.locator("#control-halt").get_by_role("button", name="Halt trading").click()
    expect(page.locator(".message-success")).to_contain_text("Halt trading: done.")
    expect(page.locator("#halt-notice")).to_contain_text("Waiting for the North Atlantic Council's statement.")
    expect(page.locator(".market-events")).to_contain_text("Trading halted")
    if violations := axe_violations(page):
        pytest.fail("market page with controls and a halt:\n" + describe(violations))

    # A trader sees the notice and cannot trade.
    trader = page.context.browser.new_context()
    trader_page = trader.new_page()
    login(trader_page, live_server.url, "trader")
    trader_page.goto(url)
    expect(trader_page.locator("#halt-notice")).to_contain_text("North Atlantic Council")
    expect(trader_page.locator("#staff-controls-title")).to_have_count(0)
    trader.close()

    # Resume, add liquidity, add an outcome.
    page.locator("#control-resume summary").click()
    page.locator("#control-resume").get_by_role("button", name="Resume trading").click()
    expect(page.locator("#halt-notice")).to_have_count(0)
    page.locator("#control-liquidity summary").click()
    page.locator("#control-liquidity").get_by_label("New liquidity (b)").fill("400")
    page.locator("#control-liquidity").get_by_label("Reason").fill("More traders arrived.")
    page.locator("#control-liquidity").get_by_role("button", name="Raise liquidity").click()
    expect(page.locator(".market-events")).to_contain_text("b 100.0000 → 400.0000")
    page.locator("#control-outcome summary").click()
    page.locator("#control-outcome").get_by_label("Label").fill("Mette Frederiksen")
    page.locator("#control-outcome").get_by_label("Starting probability (%)").fill("5")
    page.locator("#control-outcome").get_by_label("Reason").fill("Named in the press.")
    page.locator("#control-outcome").get_by_role("button", name="Add the outcome").click()
    expect(page.locator("#live-region")).to_contain_text("Mette Frederiksen")
    expect(page.locator("#live-region .outcome-prob[data-outcome=METTE_FREDERIKSEN]")).to_have_text("5.0%")

    # A refused control comes back with its error.
    page.locator("#control-liquidity summary").click()
    page.locator("#control-liquidity").get_by_label("New liquidity (b)").fill("10")
    page.locator("#control-liquidity").get_by_label("Reason").fill("Oops.")
    page.locator("#control-liquidity").get_by_role("button", name="Raise liquidity").click()
    expect(page.locator(".field-error")).to_contain_text("Give a liquidity above the current 400.0000")

    # Clarify the criteria from the edit page: a public revision.
    page.goto(f"{url}edit/")
    page.get_by_label("Resolution criteria").fill("The person the North Atlantic Council appoints, per nato.int.")
    page.get_by_label("Why (public)").fill("Named the source.")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".market-events")).to_contain_text("Named the source.")
    expect(page.locator(".revision-after")).to_contain_text("per nato.int")
    if violations := axe_violations(page):
        pytest.fail("market page with a revision:\n" + describe(violations))

    market.refresh_from_db()
    assert market.liquidity == Decimal("400")
    assert market.status == Market.Status.OPEN
    assert not market.is_halted
    kinds = list(MarketEvent.objects.filter(market=market).order_by("id").values_list("kind", flat=True))
    assert kinds == ["halted", "resumed", "liquidity_added", "outcome_added", "edited"]
