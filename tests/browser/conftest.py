"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright's sync API.

Playwright's sync API runs an event loop in the test thread, so Django's async-safety check must
be switched off for the ORM calls the tests make around it.
"""

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.factories import trade_request

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

# How long a step or an expect() waits for the page before it fails. Generous, because a loaded machine (CI, or
# several test runs at once) can take seconds to render; a passing step never waits longer than it must.
BROWSER_TIMEOUT_MS = 20_000
expect.set_options(timeout=BROWSER_TIMEOUT_MS)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="session")
def chromium():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.skip("chromium is not on PATH (apt-get install -y chromium); browser tests need a real browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium) -> Iterator:
    context = chromium.new_context(viewport={"width": 1280, "height": 1100})
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, *, full_page: bool = False) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return take


@pytest.fixture
def site(make_user, make_market):
    """The seeded markets, a resolved and scored one, staff ("staffer") and a trader ("trader") holding
    Yes in the Rutte market and Kaja Kallas in the successor market, who started its discussion (a reply
    mentions them, and a report of the reply waits in the moderation queue)."""
    from markets.models import Market
    from markets.services import trade_execute
    from tests.browser.site import (
        PASSWORD,
        seed_awaiting_resolution,
        seed_discussion,
        seed_markets,
        seed_resolved_market,
    )

    seed_markets(make_market, make_user)
    staff = make_user("staffer", password=PASSWORD, is_staff=True)
    seed_resolved_market(make_market, staff=staff)
    trader = make_user("trader", password=PASSWORD)
    for slug, code in (("rutte-nato", "YES"), ("next-nato-sg", "KALLAS")):
        trade_execute(
            user=trader, market=Market.objects.get(slug=slug), request=trade_request(code, "buy", amount="30")
        )
    seed_awaiting_resolution(make_market, trader=trader)
    seed_discussion(trader=trader)
    return staff
