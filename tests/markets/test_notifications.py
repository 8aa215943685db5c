"""Market events told to the users they concern: exactly once, set-based, with the e-mail each one wants.

Resolution (with what each was paid) to traders and followers; closing within a day to holders; a 10-point
move to followers; following and unfollowing; the mail (immediate and digest) and the unsubscribe link."""

from datetime import timedelta
from unittest import mock

import pytest
from django.core import mail
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Notification, NotificationPreference
from accounts.notifications import (
    notification_preference_set,
    notifications_digest_send,
    notifications_email_send,
    unsubscribe_token,
)
from markets import hooks
from markets import tasks as markets_tasks
from markets.models import MarketFollow, Outcome
from markets.selectors.follows import market_followed
from markets.services import market_resolve, market_settle
from markets.services.follows import market_follow_set
from markets.services.notifications import (
    market_resolved_notify,
    markets_closing_notify,
    markets_moved,
    markets_moved_notify,
    resolutions_unannounced,
)
from tests.markets.settlement_helpers import buy, sell

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staffer", is_staff=True)


def resolve_and_settle(market, staff, code="YES"):
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        market_resolve(market=market, user=staff, kind="outcome", outcome_code=code, reason="It happened.")
    assert market_settle(market_id=market.pk) is not None


def user_with_email(make_user, name):
    user = make_user(name)
    user.email = f"{name}@example.org"
    user.save(update_fields=["email"])
    return user


def test_a_resolution_tells_every_trader_once_with_what_they_were_paid(make_market, make_user, staff):
    market = make_market("rutte", question="Will Rutte lead NATO?")
    winner, loser, seller = (make_user(name) for name in ("win", "lose", "sold"))
    buy(winner, market, "YES", "50")
    buy(loser, market, "NO", "30")
    buy(seller, market, "YES", "10")
    sell(seller, market, "YES", "1")
    resolve_and_settle(market, staff)

    assert market_resolved_notify(market_id=market.pk) == 3
    # A retried or duplicated task writes nothing more.
    assert market_resolved_notify(market_id=market.pk) == 0
    assert Notification.objects.filter(kind="market_resolved").count() == 3

    won = Notification.objects.get(recipient=winner)
    paid = won.payload["paid"]
    assert float(paid) > 50
    assert won.text.startswith("“Will Rutte lead NATO?” resolved Yes. You were paid ")
    assert won.text.endswith(" credits.")
    assert won.link == "/markets/rutte/"
    assert Notification.objects.get(recipient=loser).payload["paid"] == "0.000000"


def test_followers_who_did_not_trade_hear_of_it_and_an_unfollowing_loser_does_not(make_market, make_user, staff):
    market = make_market("rutte")
    trader, watcher, quitter = make_user("trader"), make_user("watcher"), make_user("quitter")
    buy(trader, market, "YES", "20")
    buy(quitter, market, "NO", "20")
    market_follow_set(user=watcher, market=market, following=True)
    market_follow_set(user=quitter, market=market, following=False)
    resolve_and_settle(market, staff)

    market_resolved_notify(market_id=market.pk)

    told = dict(Notification.objects.values_list("recipient__username", "payload"))
    assert set(told) == {"trader", "watcher"}
    assert told["watcher"]["paid"] is None
    assert "paid" not in told["watcher"]["text"]


def test_the_fan_out_is_a_few_statements_whatever_the_number_of_holders(make_market, make_user, staff):
    market = make_market("crowd")
    for index in range(12):
        buy(make_user(f"t{index}"), market, "YES" if index % 2 else "NO", "5")
    resolve_and_settle(market, staff)
    with CaptureQueriesContext(connection) as queries:
        assert market_resolved_notify(market_id=market.pk) == 12
    inserts = [query["sql"] for query in queries.captured_queries if query["sql"].lstrip().startswith("INSERT")]
    assert len(inserts) == 1
    assert len(queries.captured_queries) <= 3


def test_the_settled_hook_enqueues_the_notifications(monkeypatch):
    enqueued: list[int] = []
    monkeypatch.setattr(markets_tasks.market_resolved_notify, "delay", enqueued.append)
    hooks.market_settled(market_id=5)
    assert enqueued == [5]


def test_the_sweeper_finds_a_settled_market_nobody_was_told_of(make_market, make_user, staff):
    market = make_market("lost")
    buy(make_user("t"), market, "YES", "5")
    resolve_and_settle(market, staff)
    now = timezone.now()
    window = {"settled_after": now - timedelta(days=1), "settled_before": now + timedelta(seconds=1)}
    assert resolutions_unannounced(**window) == [market.pk]
    market_resolved_notify(market_id=market.pk)
    assert resolutions_unannounced(**window) == []


def test_resolution_mail_goes_at_once_and_once(make_market, make_user, staff, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    market = make_market("mailed")
    ana = user_with_email(make_user, "ana")
    bo = user_with_email(make_user, "bo")
    quiet = make_user("quiet")  # no address: told in the app only
    for user in (ana, bo, quiet):
        buy(user, market, "YES", "5")
    notification_preference_set(user=bo, kind="market_resolved", delivery="off")
    resolve_and_settle(market, staff)
    market_resolved_notify(market_id=market.pk)

    assert notifications_email_send() == 1
    assert notifications_email_send() == 0
    assert [message.to for message in mail.outbox] == [["ana@example.org"]]
    message = mail.outbox[0]
    assert "resolved Yes" in message.subject
    assert "/accounts/notifications/unsubscribe/" in message.body
    assert message.extra_headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert Notification.objects.filter(kind="market_resolved").count() == 3


def test_the_digest_collects_what_waits_for_it(make_market, make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    soon = make_market("soon", closes_at=timezone.now() + timedelta(hours=5))
    later = make_market("later", closes_at=timezone.now() + timedelta(hours=20))
    ana = user_with_email(make_user, "ana")
    buy(ana, soon, "YES", "5")
    buy(ana, later, "NO", "5")

    assert markets_closing_notify() == 2
    assert markets_closing_notify() == 0
    assert notifications_email_send() == 0  # closing notices wait for the digest by default
    assert notifications_digest_send() == 1
    assert notifications_digest_send() == 0
    (digest,) = mail.outbox
    assert "2 things" in digest.subject
    assert "closes within 24 hours" in digest.body
    assert "/markets/soon/" in digest.body
    assert "/markets/later/" in digest.body


def test_closing_notices_skip_markets_far_off_and_people_who_sold_out(make_market, make_user):
    soon = make_market("soon", closes_at=timezone.now() + timedelta(hours=5))
    far = make_market("far", closes_at=timezone.now() + timedelta(days=3))
    holder, gone = make_user("holder"), make_user("gone")
    buy(holder, soon, "YES", "5")
    buy(holder, far, "YES", "5")
    buy(gone, soon, "YES", "5")
    sell(gone, soon, "YES", str(soon.positions.get(user=gone, outcome__code="YES").shares))
    markets_closing_notify()
    assert list(Notification.objects.values_list("recipient__username", "payload__market")) == [("holder", "soon")]


def test_a_ten_point_move_in_a_day_tells_the_followers_once_a_day(make_market, make_user):
    day_ago = timezone.now() - timedelta(days=1, hours=1)
    market = make_market("mover", now=day_ago - timedelta(days=1))
    calm = make_market("calm", now=day_ago - timedelta(days=1))
    trader, watcher = make_user("trader"), make_user("watcher")
    market_follow_set(user=watcher, market=market, following=True)
    buy(trader, market, "YES", "80")
    buy(trader, calm, "YES", "1")

    assert markets_moved_notify() == 2
    assert markets_moved_notify() == 0
    notification = Notification.objects.get(recipient=watcher)
    assert notification.kind == "market_moved"
    assert "Yes 50% →" in notification.text
    assert not Notification.objects.filter(payload__market="calm").exists()


def test_a_binary_move_names_the_outcome_that_rose_whatever_order_the_rows_come_in(make_market, make_user):
    """Both outcomes of a binary market move by the same amount: the notification must name the one that rose
    however PostgreSQL reads the outcomes (this test failed, saying "No 50% → 22%", before the tie was broken)."""
    day_ago = timezone.now() - timedelta(days=1, hours=1)
    market = make_market("mover", now=day_ago - timedelta(days=1))
    buy(make_user("trader"), market, "YES", "80")
    # A new version of the YES row, after the NO row on disk; then a plan that reads the heap in that order.
    Outcome.objects.filter(market=market, code="YES").update(probability=F("probability"))
    with connection.cursor() as cursor:
        for plan in ("", "SET LOCAL enable_nestloop = off"):
            if plan:
                cursor.execute(plan)
            (move,) = markets_moved(now=timezone.now())
            assert (move.outcome_label, move.before) == ("Yes", 0.5), plan


def test_following_a_market_by_trading_and_unfollowing_it(make_market, make_user):
    market = make_market("followed")
    ana = make_user("ana")
    assert market_followed(market=market, user=ana) is False
    buy(ana, market, "YES", "5")
    assert market_followed(market=market, user=ana) is True
    assert not MarketFollow.objects.exists()  # a trade writes no follow row
    market_follow_set(user=ana, market=market, following=False)
    assert market_followed(market=market, user=ana) is False
    market_follow_set(user=ana, market=market, following=True)
    assert market_followed(market=market, user=ana) is True


def test_unsubscribing_turns_mail_off_and_drops_what_waited(make_market, make_user, client):
    market = make_market("soon", closes_at=timezone.now() + timedelta(hours=5))
    ana = user_with_email(make_user, "ana")
    buy(ana, market, "YES", "5")
    markets_closing_notify()
    token = unsubscribe_token(user_id=ana.pk, kind="market_closing")
    page = client.get(f"/accounts/notifications/unsubscribe/{token}/")
    assert page.status_code == 200
    assert NotificationPreference.objects.count() == 0  # looking is not unsubscribing
    assert client.post(f"/accounts/notifications/unsubscribe/{token}/").status_code == 200
    assert NotificationPreference.objects.get(user=ana, kind="market_closing").delivery == "off"
    assert Notification.objects.get(recipient=ana).email == "none"
    assert client.post("/accounts/notifications/unsubscribe/forged-token/").status_code == 400
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert client.get(f"/accounts/notifications/unsubscribe/{tampered}/").status_code == 400
