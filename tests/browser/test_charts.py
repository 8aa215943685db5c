"""Charts: the tooltip (mouse, touch, keyboard), binary charts drawing Yes only in the Yes button's colour,
a new market's chart from its opening, and the net-worth history on the portfolio and profiles."""

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from markets.models import Market
from markets.selectors.portfolio import portfolio_get
from tests.browser.site import login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TOOLTIP_TIME = re.compile(r"^[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{2}:\d{2} [AP]M UTC$")


def chart_data(page, node_id: str) -> dict:
    return json.loads(page.locator(f"#{node_id}").text_content() or "{}")


def tooltip_rows(page, chart: str) -> list[tuple[str, str]]:
    rows = page.locator(f"{chart} .chart-tip-row")
    return [
        (rows.nth(i).locator(".chart-tip-label").inner_text(), rows.nth(i).locator("strong").inner_text())
        for i in range(rows.count())
    ]


def test_hovering_shows_the_time_and_every_outcomes_probability(live_server, page, site):
    page.goto(f"{live_server.url}/markets/next-nato-sg/")
    chart = page.locator("#price-chart[data-ready=true]")
    expect(chart).to_be_attached()
    box = page.locator("#price-chart .u-over").bounding_box()
    assert box is not None
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5)
    tip = page.locator("#price-chart .chart-tip")
    expect(tip).to_be_visible()
    expect(tip.locator(".chart-tip-time")).to_have_text(TOOLTIP_TIME)
    labels = [label for label, _ in tooltip_rows(page, "#price-chart")]
    assert labels == [outcome.label for outcome in Market.objects.get(slug="next-nato-sg").outcomes.all()]
    assert all(re.fullmatch(r"\d{1,3}\.\d%", value) for _, value in tooltip_rows(page, "#price-chart"))
    page.mouse.move(box["x"] - 50, box["y"] - 50)
    expect(tip).to_be_hidden()


def test_touching_a_chart_on_a_phone_shows_the_tooltip(live_server, chromium, site):
    context = chromium.new_context(viewport={"width": 390, "height": 844}, has_touch=True, is_mobile=True)
    try:
        page = context.new_page()
        page.goto(f"{live_server.url}/markets/rutte-nato/")
        expect(page.locator("#price-chart[data-ready=true]")).to_be_attached()
        box = page.locator("#price-chart .u-over").bounding_box()
        assert box is not None
        page.touchscreen.tap(box["x"] + box["width"] * 0.7, box["y"] + box["height"] * 0.5)
        expect(page.locator("#price-chart .chart-tip")).to_be_visible()
        assert [label for label, _ in tooltip_rows(page, "#price-chart")] == ["Yes", "No"]
        yes, no = (float(value.rstrip("%")) for _, value in tooltip_rows(page, "#price-chart"))
        assert abs(yes + no - 100) <= 0.1
    finally:
        context.close()


def colour_pixels(page, rgb: tuple[int, int, int]) -> int:
    """How many pixels of the chart's canvas are (nearly) this colour."""
    return page.locator("#price-chart canvas").evaluate(
        """(canvas, rgb) => {
            const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
            let count = 0;
            for (let i = 0; i < data.length; i += 4) {
                if (Math.abs(data[i] - rgb[0]) < 12 && Math.abs(data[i + 1] - rgb[1]) < 12
                    && Math.abs(data[i + 2] - rgb[2]) < 12 && data[i + 3] > 200) count++;
            }
            return count;
        }""",
        list(rgb),
    )


def rgb_of(css: str) -> tuple[int, int, int]:
    red, green, blue = (int(part) for part in re.findall(r"\d+", css)[:3])
    return red, green, blue


def test_a_binary_chart_draws_yes_only_in_the_yes_buttons_colour(live_server, page, site):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    expect(page.locator("#price-chart[data-ready=true]")).to_be_attached()
    yes = rgb_of(page.locator(".seg-yes > span").evaluate("span => getComputedStyle(span).backgroundColor"))
    page.locator(".outcome-choice label", has_text="No").click()
    no = rgb_of(page.locator(".seg-no > span").evaluate("span => getComputedStyle(span).backgroundColor"))
    assert yes != no
    assert colour_pixels(page, yes) > 200
    assert colour_pixels(page, no) == 0
    # The swatches of the price list use the same two colours.
    swatches = page.locator("#live-region .swatch")
    assert rgb_of(swatches.nth(0).evaluate("s => getComputedStyle(s).backgroundColor")) == yes
    assert rgb_of(swatches.nth(1).evaluate("s => getComputedStyle(s).backgroundColor")) == no


def test_a_new_markets_chart_starts_at_its_opening_price_and_time(live_server, page, site, make_market):
    opened = timezone.now() - timedelta(minutes=5)
    market = make_market(
        slug="fresh",
        question="Will this fresh market open at 30%?",
        kind="binary",
        liquidity=Decimal("100"),
        closes_at=timezone.now() + timedelta(days=3),
        initial_probabilities=[Decimal("0.3"), Decimal("0.7")],
        now=opened,
    )
    page.goto(f"{live_server.url}/markets/{market.slug}/")
    expect(page.locator("#price-chart[data-ready=true]")).to_be_attached()
    data = chart_data(page, "chart-data")
    assert data["t"][0] == int(opened.timestamp())
    assert data["t"][-1] - data["t"][0] < 600
    assert data["series"][0]["values"][0] == pytest.approx(0.3)
    # From the keyboard: the first point is the opening, at the opening price.
    page.locator("#price-chart").focus()
    page.keyboard.press("ArrowRight")
    tip = page.locator("#price-chart .chart-tip")
    expect(tip).to_be_visible()
    expect(tip.locator(".chart-tip-time")).to_have_text(opened.strftime("%b %-d, %Y, %I:%M %p UTC"))
    assert tooltip_rows(page, "#price-chart") == [("Yes", "30.0%"), ("No", "70.0%")]
    # The chart's x scale is the market's life, not padded to a week before it existed.
    scale = page.evaluate(
        "(() => { const over = document.querySelector('#price-chart .u-over');"
        " return [over.getBoundingClientRect().left, over.getBoundingClientRect().width]; })()"
    )
    point = page.locator("#price-chart .u-cursor-pt").first.bounding_box()
    assert point is not None
    assert abs(point["x"] + point["width"] / 2 - scale[0]) < 3


@pytest.mark.parametrize("where", ["/portfolio/", "/users/trader/"])
def test_net_worth_history_on_the_portfolio_and_profile(live_server, page, site, where):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}{where}")
    chart = page.locator("#net-worth-chart[data-ready=true]")
    expect(chart).to_be_visible()
    data = chart_data(page, "net-worth-data")
    assert len(data["t"]) == len(data["net_worth"]) == len(data["balance"]) == 61
    assert data["balance"][0] == 1000
    assert data["net_worth"][0] == 1000
    # Today's point is the portfolio's net worth: balance plus positions at current prices.
    net_worth = portfolio_get(user=User.objects.get(username="trader")).net_worth
    assert data["net_worth"][-1] == pytest.approx(float(net_worth), abs=0.01)
    page.locator("#net-worth-chart").focus()
    page.keyboard.press("ArrowLeft")
    tip = page.locator("#net-worth-chart .chart-tip")
    expect(tip).to_be_visible()
    assert [label for label, _ in tooltip_rows(page, "#net-worth-chart")] == ["Net worth", "Balance"]
