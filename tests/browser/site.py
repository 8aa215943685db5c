"""What the browser tests share: a small site traded through the real services, logging in, and the
accessibility audit (axe-core from the pinned axe-playwright-python package, injected by Playwright)."""

from datetime import timedelta
from decimal import Decimal
from functools import cache
from importlib.resources import files
from unittest import mock

from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import User
from forecast import services as forecast_services
from markets.models import Market
from markets.services import market_resolve, market_settle, trade_execute
from tests.conftest import MakeMarket, MakeUser
from tests.factories import trade_request

# Swagger UI and ReDoc parse the whole OpenAPI schema (about 100 operations) in the page's one thread before they
# draw anything: on a machine at load 15 that took longer than 20 s. Their first readiness wait gets this instead.
API_DOCS_TIMEOUT_MS = 60_000

PASSWORD = "a-long-password-9"
# axe-core's impacts; the audit fails on these two.
BLOCKING_IMPACTS = ("serious", "critical")


def seed_markets(make_market: MakeMarket, make_user: MakeUser) -> Market:
    """The Rutte market with a week of history, and a few neighbours for the markets list."""
    start = timezone.now() - timedelta(days=8)
    rutte = make_market(
        slug="rutte-nato",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        kind="binary",
        liquidity=Decimal("100"),
        closes_at=timezone.now() + timedelta(days=40),
        category="Politics",
        description="Jens Stoltenberg's term ends in 2024. Mark Rutte, outgoing Dutch prime minister, is a candidate.",
        resolution_criteria="Resolves YES if NATO announces Mark Rutte's appointment on or before 1 July 2024.",
        now=start,
    )
    successor = make_market(
        slug="next-nato-sg",
        question="Who will be the next NATO Secretary-General?",
        kind="multiple",
        liquidity=Decimal("150"),
        closes_at=timezone.now() + timedelta(days=60),
        outcomes=[
            ("RUTTE", "Mark Rutte"),
            ("KALLAS", "Kaja Kallas"),
            ("RINKEVICS", "Edgars Rinkēvičs"),
            ("IOHANNIS", "Klaus Iohannis"),
            ("OTHER", "Someone else entirely, or nobody by then"),
        ],
        category="Politics",
        now=start,
    )
    ai_act = make_market(
        slug="ai-act",
        question="Will the EU AI Act enter into force before August 2024?",
        kind="binary",
        liquidity=Decimal("80"),
        closes_at=timezone.now() + timedelta(days=20),
        category="Technology",
        now=start,
    )
    traders = [make_user(f"forecaster{i}", password=PASSWORD) for i in range(3)]
    moves = [
        (rutte, "YES", "40"),
        (successor, "RUTTE", "90"),
        (ai_act, "YES", "25"),
        (rutte, "NO", "15"),
        (successor, "KALLAS", "30"),
        (rutte, "YES", "60"),
        (ai_act, "NO", "10"),
        (successor, "RUTTE", "50"),
        (rutte, "YES", "35"),
        (ai_act, "YES", "30"),
    ]
    for step, (market, code, amount) in enumerate(moves):
        trade_execute(
            user=traders[step % 3],
            market=market,
            request=trade_request(code, "buy", amount=amount),
            now=start + timedelta(hours=18 * (step + 1)),
        )
    return rutte


def seed_resolved_market(make_market: MakeMarket, *, staff: User) -> Market:
    """A market the seeded forecasters traded, resolved, settled and scored, so the leaderboard and
    profiles have rows. Settlement runs here, not on a worker (nothing is sent to the broker)."""
    start = timezone.now() - timedelta(days=20)
    market = make_market(
        slug="eurovision-2024",
        question="Will Switzerland win Eurovision 2024?",
        kind="binary",
        liquidity=Decimal("60"),
        closes_at=start + timedelta(days=10),
        category="Culture",
        now=start,
    )
    for step, username in enumerate(["forecaster0", "forecaster1", "forecaster2"]):
        trade_execute(
            user=User.objects.get(username=username),
            market=market,
            request=trade_request("YES" if step != 1 else "NO", "buy", amount="20"),
            now=start + timedelta(days=step + 1),
        )
    resolved_at = start + timedelta(days=11)
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(
            market=market, user=staff, kind="outcome", outcome_code="YES", reason="Nemo won.", now=resolved_at
        )
    market_settle(market_id=market.pk, now=resolved_at + timedelta(minutes=1))
    forecast_services.market_score(market_id=market.pk)
    forecast_services.leaderboards_rebuild()
    return market


def seed_awaiting_resolution(make_market: MakeMarket, *, trader: User) -> Market:
    """A market whose close time has passed, so it waits in the staff resolution queue."""
    start = timezone.now() - timedelta(days=12)
    market = make_market(
        slug="ecb-june-cut",
        question="Will the ECB cut its deposit rate at its June 2024 meeting?",
        kind="binary",
        liquidity=Decimal("50"),
        closes_at=timezone.now() - timedelta(days=1),
        category="Economy",
        now=start,
    )
    trade_execute(
        user=trader, market=market, request=trade_request("YES", "buy", amount="15"), now=start + timedelta(days=2)
    )
    return market


def on_screen(box: dict | None, width: int) -> bool:
    """Whether an element's bounding box lies within the viewport's width (nothing clipped sideways)."""
    return box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


def settled(page) -> None:
    """Wait until htmx has wired up what it last swapped in.

    htmx inserts new content at once but attaches its triggers in the settle step, 20 ms later (the
    inserted element carries the `htmx-added` class until then): input typed in between fires no request.
    Call this after waiting for a swap and before typing into what it brought."""
    expect(page.locator(".htmx-added, .htmx-settling, .htmx-request")).to_have_count(0)


def login(page, base_url: str, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{base_url}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)


@cache
def axe_source() -> str:
    return files("axe_playwright_python").joinpath("axe.min.js").read_text(encoding="utf-8")


def axe_violations(page) -> list[dict]:
    """axe-core's serious and critical violations on the page as it is now (WCAG 2.2 A/AA and best practice)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(axe_source())
    results = page.evaluate("() => window.axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation["impact"] in BLOCKING_IMPACTS]


def describe(violations: list[dict]) -> str:
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"][:5]:
            lines.append(f"    {node['target']}: {node.get('failureSummary', '').splitlines()[-1:]}")
    return "\n".join(lines)


def seed_discussion(*, trader: User) -> None:
    """A comment with a position and forecast under the Rutte market, a reply that mentions its author (who is
    notified), and a report of the reply in the staff's moderation queue."""
    from markets.services.comments import comment_create, comment_report

    market = Market.objects.get(slug="rutte-nato")
    comment = comment_create(
        market=market,
        author=trader,
        body="The **Americans** back him; see [the news](https://www.nato.int/).\n\n- Hungary\n- Romania",
        attach_forecast=True,
    )
    reply = comment_create(
        market=market, author=User.objects.get(username="forecaster0"), body="@trader Romania?", parent_id=comment.pk
    )
    comment_report(comment=reply, reporter=User.objects.get(username="forecaster1"), reason="Seeded report.")
