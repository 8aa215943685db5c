"""A resolution proposed or challenged on a market you hold: the holders hear of it once per proposal and
event, set-based, after the commit, with the e-mail their preference for the kind asks for
(markets.services.notifications; the worker path is in tests/markets/test_proposal_worker.py)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import Notification
from accounts.notifications import notification_preference_set, notifications_email_send
from markets import tasks as markets_tasks
from markets.models import Position, Proposal
from markets.services import challenge_create, proposal_create
from markets.services.notifications import ProposalEvent, proposal_notify, proposals_unannounced
from tests.markets.settlement_helpers import buy, sell

pytestmark = pytest.mark.django_db

SOURCE = "https://example.org/answer"


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


@pytest.fixture
def market(make_market, resolver):
    return make_market("held", question="Will it hold?", created_by=resolver, now=timezone.now() - timedelta(hours=1))


def user_with_email(make_user, name):
    user = make_user(name)
    user.email = f"{name}@example.org"
    user.save(update_fields=["email"])
    return user


def propose(market, resolver):
    return proposal_create(
        market=market,
        user=resolver,
        kind="outcome",
        outcome_code="YES",
        reason="It held.",
        source_url=SOURCE,
        known_at=timezone.now(),
    )


@pytest.fixture
def sent(monkeypatch):
    """The messages the services send by name after commit, instead of a broker."""
    messages: list[tuple[str, list[object]]] = []
    monkeypatch.setattr(
        "markets.services.notifications.current_app.send_task",
        lambda name, args: messages.append((name, list(args))),
    )
    return messages


def test_a_proposal_tells_every_holder_once_after_commit(
    market, resolver, make_user, sent, django_capture_on_commit_callbacks
):
    ana, ben, sold = (make_user(name) for name in ("ana", "ben", "sold"))
    buy(ana, market, "YES", "20")
    buy(ben, market, "NO", "10")
    buy(sold, market, "YES", "5")
    sell(sold, market, "YES", str(Position.objects.get(user=sold).shares))
    with django_capture_on_commit_callbacks(execute=True):
        proposal = propose(market, resolver)
    assert ("markets.tasks.proposal_notify", [proposal.pk, "proposed"]) in sent

    with CaptureQueriesContext(connection) as queries:
        assert proposal_notify(proposal_id=proposal.pk, event=ProposalEvent.PROPOSED) == 2
    assert len([q for q in queries.captured_queries if q["sql"].lstrip().startswith("INSERT")]) == 1
    # A retried or duplicated task writes nothing more.
    assert proposal_notify(proposal_id=proposal.pk, event=ProposalEvent.PROPOSED) == 0
    told = Notification.objects.filter(kind="resolution_proposed")
    assert sorted(told.values_list("recipient__username", flat=True)) == ["ana", "ben"]
    note = told.get(recipient=ana)
    assert note.event_key == f"resolution_proposed:{proposal.pk}"
    assert note.text.startswith("A resolution was proposed for “Will it hold?”: Yes. Challenge it until ")
    assert note.link == "/markets/held/#proposals"
    assert note.payload["proposal"] == proposal.pk


def test_a_rolled_back_proposal_sends_nothing(market, resolver, make_user, sent, django_capture_on_commit_callbacks):
    buy(make_user("ana"), market, "YES", "20")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                propose(market, resolver)
                raise RuntimeError("the caller's transaction fails after the proposal")
        except RuntimeError:
            pass
    assert callbacks == []
    assert sent == []
    assert not Proposal.objects.exists()


def test_the_first_challenge_tells_the_other_holders_once(
    market, resolver, make_user, sent, settings, django_capture_on_commit_callbacks
):
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("5")
    ana, ben, cy = (make_user(name) for name in ("ana", "ben", "cy"))
    for user in (ana, ben, cy):
        buy(user, market, "YES", "10")
    proposal = propose(market, resolver)
    with django_capture_on_commit_callbacks(execute=True):
        challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    with django_capture_on_commit_callbacks(execute=True):
        challenge_create(proposal=proposal, user=ben, reason="Wrong too.")
    challenged = [message for message in sent if message[1][1] == "challenged"]
    assert challenged == [("markets.tasks.proposal_notify", [proposal.pk, "challenged"])]

    assert proposal_notify(proposal_id=proposal.pk, event=ProposalEvent.CHALLENGED) == 1
    assert proposal_notify(proposal_id=proposal.pk, event=ProposalEvent.CHALLENGED) == 0
    note = Notification.objects.get(event_key=f"resolution_challenged:{proposal.pk}")
    assert note.recipient == cy  # the challengers know already
    assert "was challenged; staff will decide" in note.text


def test_a_proposal_replaced_before_the_task_ran_is_not_announced(market, resolver, make_user):
    buy(make_user("ana"), market, "YES", "10")
    first = propose(market, resolver)
    proposal_create(
        market=market, user=resolver, kind="annulled", reason="Void after all.", source_url=SOURCE, known_at=None
    )
    assert proposal_notify(proposal_id=first.pk, event=ProposalEvent.PROPOSED) == 0
    assert proposal_notify(proposal_id=first.pk, event=ProposalEvent.CHALLENGED) == 0


def test_mail_follows_each_holders_preference_for_the_kind(market, resolver, make_user, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ana, bo, di = (user_with_email(make_user, name) for name in ("ana", "bo", "di"))
    for user in (ana, bo, di):
        buy(user, market, "NO", "5")
    notification_preference_set(user=bo, kind="resolution_proposed", delivery="off")
    notification_preference_set(user=di, kind="resolution_proposed", delivery="digest")
    proposal = propose(market, resolver)
    proposal_notify(proposal_id=proposal.pk, event=ProposalEvent.PROPOSED)

    assert notifications_email_send() == 1
    assert [message.to for message in mail.outbox] == [["ana@example.org"]]
    assert "A resolution was proposed" in mail.outbox[0].subject
    emails = dict(Notification.objects.values_list("recipient__username", "email"))
    assert emails == {"ana": "sent", "bo": "none", "di": "digest"}


def test_the_sweeper_announces_what_a_lost_message_left_unsaid(market, resolver, make_user, monkeypatch, settings):
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("5")
    ana, ben = make_user("ana"), make_user("ben")
    buy(ana, market, "YES", "10")
    buy(ben, market, "NO", "10")
    proposal = propose(market, resolver)  # no on-commit in this test: the messages are "lost"
    challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    now = timezone.now()
    window = {"after": now - timedelta(days=1), "before": now + timedelta(seconds=1)}
    assert proposals_unannounced(**window) == [(proposal.pk, "proposed"), (proposal.pk, "challenged")]

    enqueued: list[tuple[int, str]] = []
    monkeypatch.setattr(markets_tasks.proposal_notify, "delay", lambda *args: enqueued.append(args))
    monkeypatch.setattr(markets_tasks.market_resolved_notify, "delay", lambda *args: None)
    assert markets_tasks.resolution_notifications_sweep(older_than_seconds=0) == 2
    assert enqueued == [(proposal.pk, "proposed"), (proposal.pk, "challenged")]
    for proposal_id, event in enqueued:
        markets_tasks.proposal_notify.run(proposal_id, event)
    assert proposals_unannounced(**window) == []
    assert Notification.objects.filter(kind="resolution_proposed").count() == 3  # ana, ben; then ben
