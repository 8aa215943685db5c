"""The trade panel, item by item: what a trade stands to win, warnings before submitting, errors that go
away, inputs that stay, the forecast slider, per-mode help, sell buttons, multiple-choice outcomes, and
messages in the product's words; all of it also from the keyboard alone."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from accounts.models import User
from markets.models import Market, Position
from tests.browser.site import login, on_screen, settled

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def preview(page):
    return page.locator("#trade-preview")


def open_market(page, live_server, slug="rutte-nato"):
    page.goto(f"{live_server.url}/markets/{slug}/")
    expect(page.locator("#price-chart[data-ready=true]")).to_be_attached()


def test_preview_says_what_the_trade_stands_to_win(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server)
    page.locator("input[name=value]").fill("10")
    expect(preview(page)).to_contain_text("Pays")
    quoted = re.search(r"([\d.,]+) Yes", preview(page).locator(".quote").inner_text())
    payoff = re.fullmatch(
        r"Pays ([\d.,]+) credits if Yes happens: profit \+([\d.,]+)\.", preview(page).locator(".payoff").inner_text()
    )
    assert quoted is not None
    assert payoff is not None
    shares = Decimal(quoted[1].replace(",", ""))
    pays, profit = payoff.groups()
    assert Decimal(pays) == shares
    assert Decimal(profit) == shares - Decimal("10.00")


def test_warnings_before_submitting_too_many_shares_or_too_many_credits(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server)
    held = Position.objects.get(user__username="trader", market__slug="rutte-nato", outcome__code="YES").shares
    page.locator(".side-choice label", has_text="Sell").click()
    page.get_by_label("Trade by").select_option("shares")
    page.locator("input[name=value]").fill(str(held + 5))
    expect(preview(page).get_by_role("alert")).to_have_text(
        f"You hold only {held:,.2f} Yes shares: sell at most that many."
    )
    page.locator(".outcome-choice label", has_text="No").click()
    expect(preview(page).get_by_role("alert")).to_have_text("You hold no No shares to sell.")
    page.locator(".side-choice label", has_text="Buy").click()
    page.locator("input[name=value]").fill("50000")
    expect(preview(page).get_by_role("alert")).to_contain_text("This costs more than your balance of")


def test_a_refused_trade_keeps_the_inputs_and_its_error_goes_when_an_input_changes(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server, "next-nato-sg")
    page.locator(".outcome-choice label", has_text="Kaja Kallas").click()
    page.locator(".side-choice label", has_text="Sell").click()
    page.get_by_label("Trade by").select_option("shares")
    page.locator("input[name=value]").fill("100000")
    page.get_by_role("button", name="Place trade").click()
    errors = page.locator("#trade-panel .form-errors, #trade-panel #value-errors")
    expect(errors.first).to_be_visible()
    # Everything typed is still there, and the preview shows it again.
    expect(page.locator(".outcome-choice input[value=KALLAS]")).to_be_checked()
    expect(page.locator(".side-choice input[value=sell]")).to_be_checked()
    expect(page.get_by_label("Trade by")).to_have_value("shares")
    expect(page.locator("input[name=value]")).to_have_value("100000")
    expect(preview(page).get_by_role("alert")).to_contain_text("You hold only")
    page.locator("input[name=value]").fill("1")
    expect(errors).to_have_count(0)
    expect(page.locator("#trade-panel [aria-invalid=true]")).to_have_count(0)


def test_the_forecast_slider_works_from_the_keyboard_and_help_shows_only_for_its_mode(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server)
    helps = page.locator("[data-mode-help]")
    slider = page.get_by_label("Your forecast (%), slider")
    for mode in ("amount", "shares", "probability"):
        page.get_by_label("Trade by").select_option(mode)
        expect(page.locator(f"[data-mode-help={mode}]")).to_be_visible()
        expect(helps.filter(visible=True)).to_have_count(1)
        if mode == "probability":
            expect(slider).to_be_visible()
        else:
            expect(slider).to_be_hidden()
    slider.focus()
    for _ in range(30):
        page.keyboard.press("ArrowRight")
    expect(page.locator("input[name=value]")).to_have_value("80")
    expect(slider).to_have_attribute("aria-valuetext", "80%")
    expect(preview(page)).to_contain_text("Yes after80.0%")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("Bought")
    expect(page.locator("#live-region .outcome-prob[data-outcome=YES]")).to_have_text("80.0%")


def test_sell_on_a_position_opens_the_panel_ready_to_sell_it(live_server, page, site):
    login(page, live_server.url, "trader")
    user = User.objects.get(username="trader")
    held = Position.objects.get(user=user, market__slug="rutte-nato", outcome__code="YES").shares
    open_market(page, live_server)
    page.locator("#my-position").get_by_role("link", name="Sell Yes shares").click()
    expect(page.locator(".side-choice input[value=sell]")).to_be_checked()
    expect(page.locator(".outcome-choice input[value=YES]")).to_be_checked()
    expect(page.get_by_label("Trade by")).to_have_value("shares")
    expect(page.locator("input[name=value]")).to_have_value(str(held))
    expect(page.locator("input[name=value]")).to_be_focused()
    expect(preview(page)).to_contain_text("You receive")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator(".flash-success")).to_contain_text("Sold")
    assert Position.objects.get(user=user, market__slug="rutte-nato", outcome__code="YES").shares == 0

    # From the portfolio: the link opens the market page with the panel ready and previewed.
    page.goto(f"{live_server.url}/portfolio/")
    row = page.locator("section[aria-labelledby=open-title] tbody tr", has_text="Kaja Kallas")
    row.get_by_role("link", name=re.compile("Sell")).click()
    expect(page).to_have_url(re.compile(r"/markets/next-nato-sg/\?.*side=sell"))
    expect(page.locator(".side-choice input[value=sell]")).to_be_checked()
    expect(page.locator(".outcome-choice input[value=KALLAS]")).to_be_checked()
    expect(preview(page)).to_contain_text("You receive")


@pytest.mark.parametrize("viewport", [{"width": 1280, "height": 900}, PHONE])
def test_multiple_choice_outcomes_show_whole_names_prices_and_a_buy_button(live_server, page, site, viewport):
    login(page, live_server.url, "trader")
    page.set_viewport_size(viewport)
    open_market(page, live_server, "next-nato-sg")
    market = Market.objects.get(slug="next-nato-sg")
    for outcome in market.outcomes.all():
        button = page.locator(".outcome-choice label", has=page.locator(f"input[value={outcome.code}]"))
        expect(button.locator(".seg-label")).to_have_text(outcome.label)
        expect(button.locator(".seg-price")).to_have_text(f"{Decimal(str(outcome.probability)) * 100:.1f}%")
        # Whole: nothing cut off inside the button or past the screen's edge.
        assert button.evaluate("label => label.scrollWidth <= label.clientWidth")
        assert on_screen(button.bounding_box(), viewport["width"])
        listed = page.locator("#live-region .outcome-price", has_text=outcome.label)
        expect(listed.locator(".outcome-label")).to_have_text(outcome.label)
    page.locator("#live-region .outcome-price", has_text="Someone else entirely").get_by_role(
        "link", name="Buy"
    ).click()
    expect(page.locator(".outcome-choice input[value=OTHER]")).to_be_checked()
    expect(page.locator(".side-choice input[value=buy]")).to_be_checked()
    expect(page.locator("input[name=value]")).to_be_focused()
    page.keyboard.type("5")
    expect(preview(page)).to_contain_text("Pays")
    expect(preview(page)).to_contain_text("if Someone else entirely, or nobody by then happens")


def test_messages_are_in_the_products_words(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server)
    value = page.locator("input[name=value]")
    value.fill("0")
    expect(preview(page)).to_have_text("Enter an amount of at least 0.000001 credits.")
    page.get_by_label("Trade by").select_option("shares")
    expect(preview(page)).to_have_text("Enter at least 0.000001 shares.")
    page.get_by_label("Trade by").select_option("probability")
    expect(preview(page)).to_have_text("Enter a forecast between 0.01% and 99.99%.")
    page.get_by_label("Trade by").select_option("amount")
    value.fill("")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator("#value-errors")).to_have_text("Enter the amount of credits to trade.")
    # The submit swapped in a new panel: type only once htmx has wired up its preview.
    settled(page)
    value.fill("1.1234567")
    expect(preview(page)).to_have_text("Use at most 6 decimal places.")
    expect(page.locator("body")).not_to_contain_text("Ensure this value")


def test_the_trade_panel_works_from_the_keyboard_alone_with_focus_visible(live_server, page, site):
    login(page, live_server.url, "trader")
    open_market(page, live_server)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    reached = False
    for _ in range(60):
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.name || ''")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        box_outline = page.evaluate(
            "(() => { const el = document.activeElement; const label = el.closest('label');"
            " const span = label && label.querySelector(':scope > span');"
            " return span ? getComputedStyle(span).outlineStyle : 'none'; })()"
        )
        # Focus is visible on every stop: an outline on the element, or on the button a radio stands behind.
        assert outline != "none" or box_outline != "none", page.evaluate("document.activeElement.outerHTML")
        if focused == "outcome":
            reached = True
            break
    assert reached
    page.keyboard.press("ArrowRight")
    expect(page.locator(".outcome-choice input[value=NO]")).to_be_checked()
    page.keyboard.press("Tab")
    expect(page.locator(".side-choice input[value=buy]")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Trade by")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.locator("input[name=value]")).to_be_focused()
    page.keyboard.type("12")
    expect(preview(page)).to_contain_text("if No happens")
    page.keyboard.press("Enter")
    expect(page.locator(".flash-success")).to_contain_text("Bought")
    expect(page.locator(".flash-success")).to_contain_text("No shares")
