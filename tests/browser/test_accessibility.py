"""Every page passes axe-core with no serious or critical violation (contrast included), at desktop and
phone width, signed out, as a trader and as staff; and the site works from the keyboard alone."""

import pytest
from playwright.sync_api import expect

from markets.models import Market
from tests.browser.site import API_DOCS_TIMEOUT_MS, axe_violations, describe, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

PUBLIC_PAGES = [
    "/",
    "/?q=nato&sort=newest",
    "/markets/rutte-nato/",
    "/markets/next-nato-sg/",
    "/markets/eurovision-2024/",
    "/leaderboard/",
    "/leaderboard/?metric=brier&period=30d",
    "/users/forecaster0/",
    "/accounts/login/",
    "/accounts/signup/",
]
TRADER_PAGES = [
    "/portfolio/",
    "/markets/rutte-nato/",
    "/markets/next-nato-sg/",
    "/accounts/api-keys/",
    "/accounts/password/change/",
    "/users/trader/",
    "/accounts/notifications/",
    "/accounts/notifications/settings/",
]
STAFF_PAGES = [
    "/markets/new/",
    "/markets/rutte-nato/edit/",
    "/staff/resolutions/",
    "/staff/markets/eurovision-2024/resolve/",
    "/staff/comments/",
    "/markets/rutte-nato/",
]

# The admin, Django's own pages with the site's fixes (labelled date and time boxes, named filters, underlined
# breadcrumbs).
ADMIN_PAGES = [
    "/admin/",
    "/admin/markets/market/",
    "/admin/markets/market/add/",
    "/admin/accounts/user/",
    "/admin/forecast/leaderboardentry/",
    "/admin/markets/resolution/",
    "/admin/accounts/ledgertransaction/",
    "/admin/markets/comment/",
    "/admin/markets/commentreport/",
    "/admin/accounts/notification/",
]


def audit_pages(page, base_url: str, paths: list[str]) -> dict[str, str]:
    failures = {}
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for path in paths:
            response = page.goto(f"{base_url}{path}")
            assert response is not None, path
            assert response.status == 200, path
            page.wait_for_load_state("networkidle")
            violations = axe_violations(page)
            if violations:
                failures[f"{path} at {viewport['width']}px"] = describe(violations)
    return failures


def test_every_page_passes_the_accessibility_audit(live_server, page, site):
    failures = audit_pages(page, live_server.url, PUBLIC_PAGES)
    login(page, live_server.url, "trader")
    failures |= audit_pages(page, live_server.url, TRADER_PAGES)
    # The trade panel in its other states: a preview, a refused trade's error, the forecast slider.
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/markets/rutte-nato/")
    page.get_by_label("Trade by").select_option("shares")
    page.locator("input[name=value]").fill("100000")
    expect(page.locator("#trade-preview")).to_contain_text("balance")
    page.get_by_role("button", name="Place trade").click()
    expect(page.locator("#trade-panel [role=alert]").first).to_be_visible()
    if violations := axe_violations(page):
        failures["trade panel after a refused trade"] = describe(violations)
    page.context.clear_cookies()
    login(page, live_server.url, "staffer")
    failures |= audit_pages(page, live_server.url, STAFF_PAGES)
    market = Market.objects.get(slug="rutte-nato")
    failures |= audit_pages(
        page,
        live_server.url,
        [
            *ADMIN_PAGES,
            f"/admin/markets/market/{market.pk}/change/",
            f"/admin/markets/market/{market.pk}/resolve/",
            f"/admin/accounts/user/{site.pk}/change/",
        ],
    )
    page.goto(f"{live_server.url}/staff/markets/eurovision-2024/resolve/")
    page.get_by_label("One outcome wins").check()
    page.locator("select[name=outcome]").select_option("NO")
    page.get_by_label("Reason").fill("A second look.")
    page.get_by_role("button", name="Review").click()
    expect(page.get_by_role("button", name="Confirm and settle")).to_be_visible()
    if violations := axe_violations(page):
        failures["resolve confirm step"] = describe(violations)
    assert not failures, "\n\n".join(f"{where}:\n{what}" for where, what in failures.items())


def test_the_api_docs_pass_the_accessibility_audit(live_server, page):
    """Swagger UI and ReDoc, vendored pages with the site's fixes (static/css/api-docs.css, static/js/api-docs.js)."""
    failures = {}
    for viewport in (DESKTOP, PHONE):
        page.set_viewport_size(viewport)
        for path, ready in (("/api/docs/", ".opblock"), ("/api/redoc/", "[data-section-id]")):
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None, path
            assert response.status == 200, path
            page.locator(ready).first.wait_for(timeout=API_DOCS_TIMEOUT_MS)
            if violations := axe_violations(page):
                failures[f"{path} at {viewport['width']}px"] = describe(violations)
    # An operation opened, as a reader opens one to see its parameters and example.
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/api/docs/")
    page.locator(".opblock-summary").first.click(timeout=API_DOCS_TIMEOUT_MS)
    page.locator(".opblock-body").first.wait_for()
    if violations := axe_violations(page):
        failures["/api/docs/ with an operation open"] = describe(violations)
    assert not failures, "\n\n".join(f"{where}:\n{what}" for where, what in failures.items())


FOCUS_VISIBLE = """() => {
    const element = document.activeElement;
    if (!element || element === document.body) return null;
    // A radio button is drawn by the span after it; its focus ring is on that span.
    const drawn = element.matches(".seg input") ? element.nextElementSibling : element;
    const style = getComputedStyle(drawn);
    return {
        html: element.outerHTML.slice(0, 120),
        visible: style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
    };
}"""


@pytest.mark.parametrize(
    "path",
    ["/", "/markets/rutte-nato/", "/markets/next-nato-sg/", "/portfolio/", "/leaderboard/", "/users/forecaster0/"],
)
def test_every_stop_of_the_keyboard_shows_where_the_focus_is(live_server, page, site, path):
    login(page, live_server.url, "trader")
    page.goto(f"{live_server.url}{path}")
    page.wait_for_load_state("networkidle")
    seen = 0
    for _ in range(80):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_VISIBLE)
        if focus is None:
            break
        assert focus["visible"], focus["html"]
        seen += 1
    assert seen >= 5
