"""Forecasters talk and come back (issue 12), in a real browser with a real Celery worker:

two newcomers sign up; one comments with her position and forecast attached; the other replies and mentions
her, and she sees her bell count rise and reads the notification. Staff resolve the market on the staff page:
the worker settles it and tells every holder once, in the app and by e-mail (the file backend), and the
daily digest collects what one of them chose to get that way. Every page on the way passes the axe audit."""

import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from accounts.models import Notification, User
from accounts.tasks import notifications_digest_send
from markets.models import Market
from markets.services import trade_execute
from markets.services.notifications import market_resolved_notify
from tests.browser.site import PASSWORD, axe_violations, describe, login
from tests.celery_worker import broker_flush, celery_worker, wait_for
from tests.factories import trade_request

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PHONE = {"width": 390, "height": 844}


@pytest.fixture(autouse=True)
def clean_broker():
    broker_flush()
    yield
    broker_flush()


def sign_up(page, base_url: str, username: str) -> None:
    page.goto(f"{base_url}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Email").fill(f"{username}@example.org")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(lambda url: "/signup/" not in url)


def audited(page, failures: dict[str, str], where: str) -> None:
    page.wait_for_load_state("networkidle")
    if violations := axe_violations(page):
        failures[where] = describe(violations)


def mails(directory: Path) -> list[str]:
    """Every message the file backend wrote (one file per connection, messages separated by a line of dashes)."""
    messages: list[str] = []
    for path in sorted(directory.glob("*.log")):
        messages.extend(part for part in path.read_text().split("-" * 79) if part.strip())
    return messages


def test_two_newcomers_talk_and_a_resolution_reaches_every_holder_once(
    live_server, chromium, make_user, make_market, tmp_path
):
    base = live_server.url
    make_user("staffer", password=PASSWORD, is_staff=True)
    market = make_market(
        "rutte-nato",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        closes_at=timezone.now() + timedelta(days=10),
    )
    failures: dict[str, str] = {}
    alice_page = chromium.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    bob_page = chromium.new_context(viewport=PHONE).new_page()
    staff_page = chromium.new_context(viewport={"width": 1280, "height": 1000}).new_page()
    for each in (alice_page, bob_page, staff_page):
        each.set_default_timeout(10_000)

    # Two newcomers; both buy Yes (through the same service the trade panel calls).
    sign_up(alice_page, base, "alice")
    sign_up(bob_page, base, "bob")
    for name, amount in (("alice", "60"), ("bob", "20")):
        trade_execute(
            user=User.objects.get(username=name), market=market, request=trade_request("YES", "buy", amount=amount)
        )

    # Bob wants resolutions in his daily digest rather than at once.
    bob_page.goto(f"{base}/accounts/notifications/settings/")
    audited(bob_page, failures, "e-mail preferences (phone)")
    bob_page.locator("#pref-market_resolved-digest").check()
    bob_page.get_by_role("button", name="Save preferences").click()
    expect(bob_page.get_by_text("Your e-mail preferences are saved.")).to_be_visible()

    # Alice comments with her position and forecast attached.
    alice_page.goto(f"{base}/markets/rutte-nato/")
    expect(alice_page.locator("#bell-count")).to_have_count(0)
    alice_page.get_by_label("Your comment").fill("Rutte has the votes: **the Americans back him**.")
    alice_page.get_by_label("Attach my current forecast").check()
    alice_page.get_by_role("button", name="Post comment").click()
    comment = alice_page.locator(".comment").first
    expect(comment).to_contain_text("holds")
    expect(comment).to_contain_text("Yes")
    expect(comment.locator(".comment-forecast")).to_contain_text("Forecast: Yes")
    expect(comment.locator("strong")).to_have_text("the Americans back him")
    audited(alice_page, failures, "market page with a comment")

    with celery_worker(
        name="community",
        env={"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(tmp_path)},
    ):
        # Bob, on his phone, replies and mentions her.
        bob_page.goto(f"{base}/markets/rutte-nato/")
        bob_page.locator("summary", has_text="Reply").first.click()
        bob_page.get_by_label("Your reply to alice").fill("@alice Kallas is not out of it yet.")
        bob_page.get_by_role("button", name="Post reply").click()
        reply = bob_page.locator(".comment-reply").first
        expect(reply).to_contain_text("Kallas is not out of it yet.")
        expect(reply.locator("a.mention")).to_have_attribute("href", "/users/alice/")
        audited(bob_page, failures, "market page with a reply (phone)")
        box = reply.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE["width"]

        # Alice's bell count rises; she reads the notification.
        alice_page.reload()
        expect(alice_page.locator("#bell-count")).to_contain_text("1")
        alice_page.locator("#nav-bell").click()
        expect(alice_page.locator(".notification-unread")).to_contain_text("bob replied to your comment")
        audited(alice_page, failures, "notifications page")
        alice_page.get_by_role("button", name=re.compile("^Read")).first.click()
        alice_page.wait_for_url(re.compile(r"/markets/rutte-nato/#comment-\d+$"))
        expect(alice_page.locator("#bell-count")).to_have_count(0)

        # Staff resolve the market on the staff page; the worker settles it and tells every holder.
        login(staff_page, base, "staffer")
        staff_page.goto(f"{base}/staff/markets/rutte-nato/resolve/")
        staff_page.get_by_label("One outcome wins").check()
        staff_page.locator("select[name=outcome]").select_option("YES")
        staff_page.get_by_label("Reason").fill("NATO announced it on 26 June 2024.")
        staff_page.get_by_role("button", name="Review").click()
        staff_page.get_by_role("button", name="Confirm and settle").click()
        wait_for(
            lambda: Notification.objects.filter(kind="market_resolved").count() == 2,
            timeout=60,
            what="the resolution's notifications",
        )
        wait_for(
            lambda: any("alice@example.org" in m and "resolved Yes" in m for m in mails(tmp_path)),
            timeout=30,
            what="alice's resolution e-mail",
        )
        # Bob's waits for the digest, which beat sends daily: here, sent on demand through the broker.
        notifications_digest_send.delay()
        wait_for(
            lambda: any(
                "bob@example.org" in m and "things you follow" in m.replace("thing you", "things you")
                for m in mails(tmp_path)
            ),
            timeout=30,
            what="bob's digest",
        )

    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVED
    resolved = Notification.objects.filter(kind="market_resolved")
    assert sorted(resolved.values_list("recipient__username", flat=True)) == ["alice", "bob"]
    # Exactly once: a retried fan-out adds nothing.
    assert market_resolved_notify(market_id=market.pk) == 0
    alice_told = resolved.get(recipient__username="alice")
    assert Decimal(alice_told.payload["paid"]) > Decimal("60")
    assert "You were paid" in alice_told.text

    sent = mails(tmp_path)
    to_alice = [m for m in sent if "To: alice@example.org" in m and "resolved Yes" in m]
    assert len(to_alice) == 1, sent
    assert "/accounts/notifications/unsubscribe/" in to_alice[0]
    assert "List-Unsubscribe-Post: List-Unsubscribe=One-Click" in to_alice[0]
    assert not [m for m in sent if "To: bob@example.org" in m and "Subject: “Will Mark Rutte" in m]
    (digest,) = [m for m in sent if "To: bob@example.org" in m and "you follow" in m]
    assert "resolved Yes" in digest

    # In the app too: Alice's bell shows the resolution, and the page says what she was paid.
    alice_page.goto(f"{base}/accounts/notifications/")
    expect(alice_page.locator("#bell-count")).to_contain_text("1")
    expect(alice_page.locator(".notification-unread")).to_contain_text("You were paid")
    alice_page.get_by_role("button", name="Mark all read").click()
    expect(alice_page.locator("#bell-count")).to_have_count(0)
    audited(alice_page, failures, "notifications page after marking all read")

    # The moderation queue: Bob reports Alice's comment, staff see it.
    bob_page.goto(f"{base}/markets/rutte-nato/")
    bob_page.locator("summary", has_text="Report").first.click()
    bob_page.get_by_label("Why should staff look at it?").fill("Testing the queue.")
    bob_page.get_by_role("button", name="Send report").click()
    expect(bob_page.get_by_text("staff will look at this comment")).to_be_visible()
    staff_page.goto(f"{base}/staff/comments/")
    expect(staff_page.locator(".report")).to_contain_text("Testing the queue.")
    audited(staff_page, failures, "moderation queue")

    assert not failures, "\n\n".join(f"{where}:\n{what}" for where, what in failures.items())
