"""Headless Chromium for the browser tests: Debian's chromium driven by Playwright's sync API.

Playwright's sync API runs an event loop in the test thread, so Django's async-safety check must
be switched off for the ORM calls the tests make around it.
"""

import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
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

# FORECASTLE_TEST_SLOW_SETTLE=1 (docs/testing.md) widens htmx's two windows in which a test can act on the page
# before htmx has wired it up, so a test that races them fails every time instead of once in a few hundred runs:
# - htmx settles what it swaps in (attaches its triggers) after SLOW_SETTLE_MS instead of 20 ms: the page's own
#   htmx-config meta is amended in the browser, before htmx reads it on DOMContentLoaded;
# - after a navigation, htmx itself (a deferred script: nothing on the page is wired before it ran) arrives
#   SLOW_SETTLE_MS late, from a server of the tests' own, while the parsed page is already on screen.
# The site itself has no such setting.
SLOW_SETTLE_MS = 600
SLOW_SETTLE_SCRIPT = f"""
document.addEventListener("DOMContentLoaded", () => {{
  const meta = document.querySelector('meta[name="htmx-config"]');
  if (meta) meta.content = JSON.stringify({{...JSON.parse(meta.content), defaultSettleDelay: {SLOW_SETTLE_MS}}});
}});
"""
HTMX = Path(__file__).resolve().parents[2] / "static" / "vendor" / "htmx.min.js"


def slow_settle() -> bool:
    return os.environ.get("FORECASTLE_TEST_SLOW_SETTLE", "") not in {"", "0"}


class SlowScript(BaseHTTPRequestHandler):
    """Serves htmx SLOW_SETTLE_MS late (the browser is sent here instead of the live server)."""

    def do_GET(self) -> None:
        time.sleep(SLOW_SETTLE_MS / 1000)
        body = HTMX.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/javascript; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="session")
def slow_htmx_url() -> Iterator[str | None]:
    if not slow_settle():
        yield None
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowScript)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/htmx.min.js"
    server.shutdown()
    server.server_close()


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
def page(chromium, slow_htmx_url) -> Iterator:
    context = chromium.new_context(viewport={"width": 1280, "height": 1100})
    context.set_default_timeout(BROWSER_TIMEOUT_MS)
    if slow_htmx_url is not None:
        context.add_init_script(SLOW_SETTLE_SCRIPT)
        context.route("**/vendor/htmx.min.js*", lambda route: route.continue_(url=slow_htmx_url))
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
