"""Issue 8, finding 2: text that users and staff type is shown as text on every page, and no script runs.

A market's question, description, category, outcome labels and resolution reason hold script payloads.
Each payload, if it ever ran, would record itself in window.__xss; the page also records every
Content-Security-Policy violation. On every page that shows those texts (markets list, market page,
portfolio, profile, leaderboard, staff queue, admin), nothing may have run and nothing may have been
blocked: the texts are encoded, not merely stopped by the policy. Before the fix, the outcome label
closed the chart's <script> element and its onerror handler ran on the market page.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from forecast.services import leaderboards_rebuild, market_score
from markets.models import Market
from markets.services import market_resolve, market_settle, trade_execute
from tests.browser.site import API_DOCS_TIMEOUT_MS
from tests.conftest import MakeMarket, MakeUser
from tests.factories import trade_request

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def payload(tag: str) -> str:
    """Each shape breaks out of a different context: element text, an attribute, a <script> element."""
    return {
        "question": "Q <script>window.__xss.push('question')</script>",
        "description": "D <img src=x onerror=\"window.__xss.push('description')\">",
        "category": "C</script><svg onload=window.__xss.push('c')>",
        "label": "L</script><img src=x onerror=window.__xss.push('label')>",
        "label2": "M\"><script>window.__xss.push('label2')</script>",
        "reason": "R <img src=x onerror=window.__xss.push('reason')>",
    }[tag]


WATCH = """
window.__xss = [];
window.__violations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__violations.push(e.violatedDirective + " " + e.blockedURI + " " + (e.sourceFile || "") + ":" + e.lineNumber);
});
window.alert = function () { window.__xss.push("alert"); };
"""


def seed(make_user: MakeUser, make_market: MakeMarket) -> tuple[Market, Market, Market]:
    now = timezone.now()
    staff = make_user("staffer", password="a-long-password-1", is_staff=True)
    trader = make_user("trader", password="a-long-password-2")
    others = [make_user(f"peer{i}") for i in range(2)]
    outcomes = [("A", payload("label")), ("B", payload("label2")), ("C", "Plain")]
    live = make_market(
        slug="payload-live",
        question=payload("question"),
        description=payload("description"),
        category=payload("category"),
        kind="multiple",
        liquidity=Decimal("50"),
        closes_at=now + timedelta(days=10),
        outcomes=outcomes,
        now=now - timedelta(days=3),
    )
    settled = make_market(
        slug="payload-settled",
        question=payload("question") + " settled",
        description=payload("description"),
        category=payload("category"),
        kind="multiple",
        liquidity=Decimal("50"),
        closes_at=now - timedelta(hours=1),
        outcomes=outcomes,
        now=now - timedelta(days=5),
    )
    due = make_market(
        slug="payload-due",
        question=payload("question") + " due",
        category=payload("category"),
        kind="multiple",
        liquidity=Decimal("50"),
        closes_at=now + timedelta(minutes=5),
        outcomes=outcomes,
        now=now - timedelta(days=2),
    )
    for user, market, code, hours in [
        (trader, live, "A", 60),
        (others[0], live, "B", 50),
        (trader, settled, "A", 110),
        (others[0], settled, "B", 100),
        (others[1], settled, "C", 90),
        (trader, due, "B", 40),
    ]:
        trade_execute(
            user=user, market=market, request=trade_request(code, "buy", amount="20"), now=now - timedelta(hours=hours)
        )
    resolution_time = now - timedelta(minutes=30)
    market_resolve(
        market=settled, user=staff, kind="outcome", outcome_code="A", reason=payload("reason"), now=resolution_time
    )
    market_settle(market_id=settled.pk, now=resolution_time)
    market_score(market_id=settled.pk)
    leaderboards_rebuild()
    # Past its close time but not closed yet: the staff queue lists it with its question.
    type(due).objects.filter(pk=due.pk).update(closes_at=now - timedelta(minutes=1))
    return live, settled, due


def log_in(page, base: str, username: str, password: str, *, admin: bool = False) -> None:
    page.goto(f"{base}/admin/login/" if admin else f"{base}/accounts/login/")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(password)
    page.locator("[type=submit]").click()
    page.wait_for_load_state("networkidle")


def assert_inert(page, url: str, shown: str) -> None:
    """Loads `url`, lets htmx and the scripts settle, and checks nothing ran or was blocked."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    expect(page.locator("body")).to_contain_text(shown)
    assert page.evaluate("window.__xss") == [], f"script ran on {url}"
    assert page.evaluate("window.__violations") == [], f"CSP violations on {url}"


def test_typed_text_never_runs_on_any_page(make_market, make_user, live_server, chromium):
    live, settled, _due = seed(make_user, make_market)
    base = live_server.url
    label_text = "L</script><img src=x onerror=window.__xss.push('label')>"

    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(WATCH)
    page = context.new_page()
    try:
        assert_inert(page, f"{base}/", "Q <script>")
        assert_inert(page, f"{base}/?q=Q", label_text)
        assert_inert(page, f"{base}/markets/{live.slug}/", label_text)
        expect(page.locator("#price-chart[data-ready=true] canvas")).to_be_visible()
        assert_inert(page, f"{base}/markets/{settled.slug}/", "R <img src=x")
        assert_inert(page, f"{base}/users/trader/", "trader")
        assert_inert(page, f"{base}/leaderboard/", "trader")

        log_in(page, base, "trader", "a-long-password-2")
        assert_inert(page, f"{base}/portfolio/", "Q <script>")
        assert_inert(page, f"{base}/markets/{live.slug}/", label_text)

        log_in(page, base, "staffer", "a-long-password-1", admin=True)
        assert_inert(page, f"{base}/staff/resolutions/", "Q <script>")
        assert_inert(page, f"{base}/staff/markets/{settled.slug}/resolve/", label_text)
        assert_inert(page, f"{base}/admin/markets/market/", "Q <script>")
        assert_inert(page, f"{base}/admin/markets/market/{live.pk}/change/", label_text)
        assert_inert(page, f"{base}/admin/markets/market/{settled.pk}/resolve/", label_text)
        assert_inert(page, f"{base}/admin/markets/resolution/", "Q <script>")
        assert_inert(page, f"{base}/markets/{live.slug}/edit/", "D <img")
    finally:
        context.close()


def test_admin_and_api_docs_run_under_the_policy(make_user, live_server, chromium):
    """The pages nobody types into still work under the CSP: Swagger UI and Redoc render the schema and
    the admin's own scripts run, with no violation."""
    make_user("staffer", password="a-long-password-1", is_staff=True)
    base = live_server.url
    context = chromium.new_context(viewport={"width": 1280, "height": 1000})
    context.add_init_script(WATCH)
    page = context.new_page()
    try:
        page.goto(f"{base}/api/docs/")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Forecastle API", timeout=API_DOCS_TIMEOUT_MS)
        assert page.evaluate("window.__violations") == []
        page.goto(f"{base}/api/redoc/")
        expect(page.locator("h1")).to_contain_text("Forecastle API", timeout=API_DOCS_TIMEOUT_MS)
        # Only Redoc's "powered by" logo from its CDN is refused (img-src): the site works offline.
        violations = page.evaluate("window.__violations")
        assert all(v.startswith("img-src https://cdn.redoc.ly/") for v in violations), violations
        log_in(page, base, "staffer", "a-long-password-1", admin=True)
        for path in ["/admin/", "/admin/markets/market/add/", "/admin/accounts/user/", "/admin/markets/market/"]:
            assert_inert(page, f"{base}{path}", "Django administration")
    finally:
        context.close()
