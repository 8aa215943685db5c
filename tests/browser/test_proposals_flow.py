"""A proposal in the browser: the market page's section and a trader's challenge from it, the list's badge and
its "Proposed" filter, the staff queue's decision and the market log that records the resolution it made, each
page passing the accessibility audit (axe-core) at desktop and phone width."""

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from markets.models import Challenge, Market, Proposal
from markets.services import proposal_create
from tests.browser.site import axe_violations, describe, login
from tests.browser.test_accessibility import audit_pages

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_trader_challenges_from_the_market_page_and_staff_decide_from_the_queue(live_server, page, site):
    market = Market.objects.get(slug="ecb-june-cut")
    proposal = proposal_create(
        market=market,
        user=site,
        kind="outcome",
        outcome_code="YES",
        reason="The ECB cut by 25 basis points on 6 June 2024.",
        source_url="https://www.ecb.europa.eu/press/pr/date/2024/html/index.en.html",
        known_at=timezone.now(),
    )
    failures = audit_pages(page, live_server.url, ["/", "/markets/ecb-june-cut/"])
    page.goto(f"{live_server.url}/")
    expect(page.get_by_text("Proposed: Yes, challenge until")).to_be_visible()
    # The list's status filter keeps the proposed market alone.
    page.get_by_label("Status").select_option("proposed")
    page.wait_for_url(lambda url: "status=proposed" in url)
    cards = page.locator(".market-card")
    expect(cards).to_have_count(1)
    expect(cards.first).to_contain_text("Proposed: Yes")
    expect(cards.first.get_by_role("link", name=market.question)).to_be_visible()

    login(page, live_server.url, "trader")
    failures |= audit_pages(page, live_server.url, ["/markets/ecb-june-cut/"])
    page.goto(f"{live_server.url}/markets/ecb-june-cut/")
    page.get_by_label("Challenge this proposal").fill("The cut was announced on 6 June, not decided then.")
    page.get_by_role("button", name="Challenge").click()
    expect(page.get_by_text("Challenge recorded")).to_be_visible()
    assert Challenge.objects.filter(proposal=proposal).count() == 1
    if violations := axe_violations(page):
        failures["market page after a challenge"] = describe(violations)

    page.context.clear_cookies()
    login(page, live_server.url, "staffer")
    failures |= audit_pages(page, live_server.url, ["/staff/resolutions/"])
    page.goto(f"{live_server.url}/staff/resolutions/")
    page.get_by_label("Why (shown on the market page)").fill("The press release is the source.")
    page.get_by_role("button", name="Reject: keep the bonds").click()
    expect(page.get_by_text("the proposal is final")).to_be_visible()
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.FINAL
    # The market log shows the resolution the proposal became, with who made it and why.
    page.goto(f"{live_server.url}/markets/ecb-june-cut/")
    logged = page.locator(".market-events .event-resolved")
    expect(logged).to_contain_text(f"Yes, by proposal {proposal.pk}")
    expect(logged).to_contain_text("By staffer")
    expect(logged).to_contain_text("The ECB cut by 25 basis points on 6 June 2024.")
    failures |= audit_pages(page, live_server.url, ["/markets/ecb-june-cut/", "/?status=proposed"])
    assert not failures, "\n\n".join(f"{where}:\n{what}" for where, what in failures.items())
