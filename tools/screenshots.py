"""Retakes the README's screenshots (docs/screenshots/) from a running site with the demo data.

    make run                                   # or any server with `manage.py demo_data` loaded
    .venv/bin/python -m tools.screenshots http://127.0.0.1:8000

The demo data's history (the Rutte markets of 2023-24 and others, resolved, settled and scored) fills the
leaderboard and the profiles; the open markets (Rutte still in office in 2028, the 2028 US election) take the
trade panel. Drives Debian's chromium through Playwright, signed in as the demo trader alice (and the demo admin
for the staff page), at 1280x900 on the desktop and 390x844 on a phone.
"""

import os
import shutil
import sys
from pathlib import Path

from playwright.sync_api import Page, ViewportSize, sync_playwright

OUT = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
RUTTE_APPOINTED = "/markets/rutte-nato-secretary-general/"
RUTTE_IN_2028 = "/markets/rutte-still-secretary-general-2028/"
US_2028 = "/markets/us-president-2028/"


def log_in(page: Page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


def settle(page: Page) -> None:
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(600)


def hover_chart(page: Page, selector: str, at: float) -> None:
    box = page.locator(f"{selector} .u-over").bounding_box()
    if box:
        page.mouse.move(box["x"] + box["width"] * at, box["y"] + box["height"] * 0.4)
        page.wait_for_timeout(200)


def shoot(page: Page, name: str, *, full_page: bool = False) -> None:
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=full_page)
    print(OUT / f"{name}.png")


def main(base: str) -> None:
    executable = shutil.which("chromium")
    if executable is None:
        sys.exit("chromium is not on the PATH (apt-get install chromium)")
    trader = os.environ.get("DEMO_USER_PASSWORD", "forecastle-demo")
    admin = os.environ.get("DEMO_ADMIN_PASSWORD", "forecastle-admin")
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        desktop = browser.new_context(viewport=DESKTOP)
        page = desktop.new_page()
        log_in(page, base, "alice", trader)
        page.goto(f"{base}{RUTTE_IN_2028}")
        settle(page)
        page.locator("input[name=value]").fill("25")
        page.locator("#trade-preview .payoff").wait_for()
        hover_chart(page, "#price-chart", 0.62)
        shoot(page, "market")
        page.goto(f"{base}{RUTTE_APPOINTED}")
        settle(page)
        hover_chart(page, "#price-chart", 0.5)
        shoot(page, "market-resolved")
        page.goto(f"{base}{US_2028}")
        settle(page)
        shoot(page, "market-multiple-choice")
        page.goto(f"{base}/")
        settle(page)
        shoot(page, "markets-list")
        page.goto(f"{base}/portfolio/")
        settle(page)
        hover_chart(page, "#net-worth-chart", 0.7)
        shoot(page, "portfolio", full_page=True)
        page.goto(f"{base}/leaderboard/")
        settle(page)
        shoot(page, "leaderboard")
        page.goto(f"{base}/users/alice/")
        settle(page)
        shoot(page, "user-profile", full_page=True)
        desktop.close()

        phone = browser.new_context(viewport=PHONE, has_touch=True, is_mobile=True, device_scale_factor=2)
        page = phone.new_page()
        log_in(page, base, "alice", trader)
        page.goto(f"{base}{RUTTE_IN_2028}")
        settle(page)
        shoot(page, "market-phone")
        page.locator("#trade-panel").scroll_into_view_if_needed()
        page.locator("input[name=value]").fill("25")
        page.locator("#trade-preview .payoff").wait_for()
        page.locator("#trade-panel").evaluate("panel => panel.scrollIntoView()")
        shoot(page, "market-phone-trade")
        page.goto(f"{base}/portfolio/")
        settle(page)
        page.locator("section[aria-labelledby=open-title]").evaluate("section => section.scrollIntoView()")
        shoot(page, "portfolio-phone")
        page.goto(f"{base}/leaderboard/")
        settle(page)
        shoot(page, "leaderboard-phone")
        phone.close()

        staff = browser.new_context(viewport=DESKTOP)
        page = staff.new_page()
        log_in(page, base, "admin", admin)
        page.goto(f"{base}/staff/resolutions/")
        settle(page)
        shoot(page, "staff-resolutions")
        staff.close()
        browser.close()


if __name__ == "__main__":
    main(sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "http://127.0.0.1:8000")
