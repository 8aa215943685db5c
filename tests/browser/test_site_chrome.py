"""The site around the markets: the header and phone menu, tables on phones, relative times, logging
out, the staff resolve form, the admin, and the API docs (Swagger UI and ReDoc, offline)."""

import json
import re
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from tests.browser.site import API_DOCS_TIMEOUT_MS, login, on_screen

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


def test_phone_menu_shows_every_item_and_the_search_box_fits_its_placeholder(live_server, page, site):
    login(page, live_server.url, "trader")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/")
    for name in ("Markets", "Portfolio", "Leaderboard", "API docs"):
        link = page.locator(".nav-links").get_by_role("link", name=name)
        expect(link).to_be_visible()
        box = link.bounding_box()
        assert on_screen(box, PHONE["width"]), (name, box)
    overflow = page.locator(".nav-links").evaluate("list => list.scrollWidth - list.clientWidth")
    assert overflow <= 0
    # The placeholder's text, measured in the input's own font, fits inside the input, on a phone and a desktop.
    assert placeholder_fits(page)
    page.set_viewport_size({"width": 1280, "height": 800})
    assert placeholder_fits(page)


def placeholder_fits(page) -> bool:
    return page.locator("#id_q").evaluate(
        """input => {
            const style = getComputedStyle(input);
            const context = document.createElement("canvas").getContext("2d");
            context.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
            const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
            return context.measureText(input.placeholder).width <= room;
        }"""
    )


def test_header_links_to_your_own_profile_and_logging_out_says_so(live_server, page, site):
    login(page, live_server.url, "trader")
    page.locator(".menu summary").click()
    page.get_by_role("link", name="Your profile").click()
    expect(page).to_have_url(re.compile(r"/users/trader/$"))
    expect(page.locator("h1")).to_have_text("trader")
    page.locator(".menu summary").click()
    page.get_by_role("button", name="Log out").click()
    expect(page.locator(".messages")).to_contain_text("You have logged out")
    expect(page.get_by_role("link", name="Log in")).to_be_visible()


@pytest.mark.parametrize(
    ("who", "path", "table"),
    [
        ("trader", "/markets/rutte-nato/", "#recent-trades table"),
        ("trader", "/portfolio/", "section[aria-labelledby=open-title] table"),
        ("trader", "/portfolio/", "#history table"),
        (None, "/leaderboard/", "#board table"),
        (None, "/users/forecaster0/", "section[aria-labelledby=resolved-title] table"),
        ("staffer", "/staff/resolutions/", "main table"),
    ],
)
def test_tables_turn_into_stacked_rows_on_a_phone(live_server, page, site, who, path, table):
    if who:
        login(page, live_server.url, who)
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}{path}")
    rows = page.locator(f"{table} tbody tr")
    expect(rows.first).to_be_visible()
    # Nothing scrolls sideways, and every cell of the first row is on screen with its column's name.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.locator(table).evaluate("t => t.scrollWidth <= t.parentElement.clientWidth")
    cells = rows.first.locator("td")
    for index in range(cells.count()):
        cell = cells.nth(index)
        if not cell.inner_text().strip():
            continue
        box = cell.bounding_box()
        assert on_screen(box, PHONE["width"]), (index, box)
        label = cell.get_attribute("data-label")
        if label:
            before = cell.evaluate("td => getComputedStyle(td, '::before').content")
            assert label in before


def test_relative_times_say_just_now_with_the_exact_time_on_hover(live_server, page, site):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}/portfolio/")
    newest = page.locator("#history tbody tr").first.locator("time")
    expect(newest).to_have_text("just now")
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4}, \d{2}:\d{2} UTC", newest.get_attribute("title") or "")
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    expect(page.locator("#recent-trades time").first).to_have_text("just now")
    expect(page.locator("#recent-trades time").last).to_have_text(re.compile(r"^\d+\s(weeks?|days?|hours?)\sago$"))
    expect(page.get_by_text("0 minutes ago")).to_have_count(0)


def test_resolve_form_does_not_call_the_winning_outcome_optional(live_server, page, site):
    login(page, live_server.url, "staffer")
    page.goto(f"{live_server.url}/staff/markets/eurovision-2024/resolve/")
    label = page.locator("label[for=id_outcome]")
    expect(label).to_have_text("Winning outcome")
    expect(page.locator("main form")).not_to_contain_text("(optional)")
    expect(page.get_by_role("group", name="Kind")).to_be_visible()
    page.goto(f"{live_server.url}/admin/markets/market/")
    page.locator("#result_list a", has_text="Will Switzerland win Eurovision 2024?").click()
    page.get_by_role("link", name=re.compile("Resolve, re-resolve")).click()
    expect(page.locator("label[for=id_outcome]")).to_have_text("Winning outcome")
    expect(page.locator("#content")).not_to_contain_text("optional")


def test_admin_says_leaderboard_entries_and_offers_no_delete_it_would_refuse(live_server, page, site):
    login(page, live_server.url, "staffer")
    page.goto(f"{live_server.url}/admin/")
    expect(page.get_by_role("link", name="Leaderboard entries")).to_be_visible()
    expect(page.locator("#content-main")).not_to_contain_text("Leaderboard entrys")
    for changelist in ("markets/market", "accounts/user"):
        page.goto(f"{live_server.url}/admin/{changelist}/")
        options = page.locator("select[name=action] option").all_inner_texts()
        assert not any("Delete" in option for option in options), (changelist, options)
        page.locator("#result_list tbody tr th a").first.click()
        expect(page.locator(".deletelink")).to_have_count(0)


def test_swagger_examples_are_valid_and_public_endpoints_show_no_lock(live_server, page, site):
    page.goto(f"{live_server.url}/api/docs/")
    trade = page.locator("#operations-v1-markets_trades_create")
    expect(trade).to_be_visible()
    trade.locator(".opblock-summary-control").click()
    example = trade.locator("[data-name=examplePanel] code").first
    expect(example).to_contain_text('"outcome"')
    assert json.loads(example.inner_text()) == {"outcome": "YES", "side": "buy", "amount": "10", "max_cost": "10"}
    trade.get_by_role("button", name="Try it out").click()
    assert json.loads(trade.locator("textarea.body-param__text").input_value())["amount"] == "10"
    # A lock on the operations that need a key (trading), none on the public ones (reading a market).
    expect(trade.locator(".authorization__btn")).to_have_count(1)
    for public in ("markets_list", "markets_retrieve", "markets_quote", "markets_history", "leaderboard_retrieve"):
        operation = page.locator(f"#operations-v1-{public}")
        expect(operation).to_be_visible()
        expect(operation.locator(".authorization__btn")).to_have_count(0)


def test_redoc_loads_nothing_from_another_site(live_server, page, site):
    own = urlsplit(live_server.url).netloc
    elsewhere: list[str] = []
    refused: list[str] = []

    def record(request) -> None:
        if urlsplit(request.url).netloc not in ("", own):
            elsewhere.append(request.url)

    def record_refusal(request) -> None:
        if request.failure == "csp":
            refused.append(request.url)

    page.on("request", record)
    page.on("requestfailed", record_refusal)
    page.goto(f"{live_server.url}/api/redoc/")
    expect(page.get_by_role("heading", name=re.compile("Forecastle API"))).to_be_visible(timeout=API_DOCS_TIMEOUT_MS)
    expect(page.get_by_text("Buy or sell an outcome").first).to_be_attached()
    page.wait_for_load_state("networkidle")
    # ReDoc's bundle asks for its maker's logo; the page's policy refuses it before it leaves the browser.
    assert sorted(set(elsewhere)) == sorted(set(refused))
    fonts = page.evaluate("[...document.querySelectorAll('link[rel=stylesheet]')].map(link => link.href)")
    assert all(urlsplit(href).netloc == own for href in fonts)
