"""Proposals become final on a real Celery worker running the beat schedule, with nobody acting after the
window: the beat task finalizes, the settlement task pays, even when the window ended while no worker ran
and when a worker is killed in the middle (tests/celery_worker.py). The worker also tells the holders that a
resolution was proposed, then challenged, in the app and by e-mail."""

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Notification
from accounts.money import ZERO
from markets.models import Market, Payout, Proposal, Resolution
from markets.services import markets_reconcile, proposal_create
from markets.services.settlement import PAUSE_ENV
from markets.tasks import settlements_sweep
from tests.celery_worker import broker_flush, celery_worker, wait_for
from tests.markets.settlement_helpers import balances, buy, expected_payouts
from tests.markets.test_worker import market_status, settlement_in_progress

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

# The worker's embedded beat runs the finalizing task this often (config/settings/base.py).
BEAT = {"PROPOSALS_FINALIZE_SECONDS": "0.5"}
SOURCE = "https://example.org/answer"


@pytest.fixture(autouse=True)
def clean_broker():
    broker_flush()
    yield
    broker_flush()


def mails(directory: Path) -> list[str]:
    """What the file backend wrote: one file per connection, messages separated by a line of dashes."""
    return [
        part for path in sorted(directory.glob("*.log")) for part in path.read_text().split("-" * 79) if part.strip()
    ]


def proposal_state(proposal: Proposal) -> str:
    return Proposal.objects.values_list("state", flat=True).get(pk=proposal.pk)


def test_a_proposal_made_through_the_api_becomes_final_and_settles_with_nobody_acting(make_market, make_user, settings):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(seconds=3)
    resolver = make_user("resolver", is_staff=True)
    ana, ben = make_user("ana"), make_user("ben")
    market = make_market("auto", created_by=resolver, now=timezone.now() - timedelta(hours=1))
    buy(ana, market, "YES", "40")
    buy(ben, market, "NO", "25")
    before = balances([ana, ben])
    expected = expected_payouts(market=market, kind="outcome", per_share=[Decimal(1), ZERO])
    client = APIClient()
    client.force_login(resolver)

    with celery_worker(name="proposals", env=BEAT, beat=True):
        response = client.post(
            f"/api/v1/markets/{market.slug}/proposals/",
            {
                "kind": "outcome",
                "outcome": "YES",
                "reason": "It happened.",
                "source_url": SOURCE,
                "known_at": timezone.now().isoformat(),
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        assert response.json()["state"] == "open"
        proposal = Proposal.objects.get(pk=response.json()["id"])
        wait_for(lambda: market_status(market) == Market.Status.RESOLVED, what="finalization and settlement")

    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.FINAL
    assert proposal.resolution is not None
    assert proposal.resolution.state == Resolution.State.SETTLED
    assert proposal.resolution.created_at >= proposal.challenge_until
    after = balances([ana, ben])
    assert {user.pk: after[user.pk] - before[user.pk] for user in (ana, ben)} == expected
    assert markets_reconcile() == []


def test_a_window_that_ended_while_the_worker_was_down_is_finalized_when_it_returns(make_market, make_user, settings):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(seconds=0.2)
    resolver = make_user("resolver", is_staff=True)
    market = make_market("late", created_by=resolver, now=timezone.now() - timedelta(hours=1))
    buy(make_user("ana"), market, "YES", "10")
    proposal = proposal_create(
        market=market,
        user=resolver,
        kind="annulled",
        reason="The question was void.",
        source_url=SOURCE,
        known_at=timezone.now(),
    )
    wait_for(lambda: timezone.now() > proposal.challenge_until, what="the window to end with no worker")
    assert proposal_state(proposal) == Proposal.State.OPEN

    with celery_worker(name="returning", env=BEAT, beat=True):
        wait_for(lambda: market_status(market) == Market.Status.ANNULLED, what="the returning worker")
    assert proposal_state(proposal) == Proposal.State.FINAL
    assert markets_reconcile() == []


def test_a_worker_killed_while_settling_a_finalized_proposal_loses_nothing(make_market, make_user, settings):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(seconds=0.2)
    resolver = make_user("resolver", is_staff=True)
    market = make_market("killed", created_by=resolver, now=timezone.now() - timedelta(hours=1))
    traders = [make_user(f"t{index}") for index in range(5)]
    for index, trader in enumerate(traders):
        buy(trader, market, "YES" if index % 2 else "NO", str(10 + index))
    before = balances(traders)
    expected = expected_payouts(market=market, kind="outcome", per_share=[ZERO, Decimal(1)])
    proposal = proposal_create(
        market=market,
        user=resolver,
        kind="outcome",
        outcome_code="NO",
        reason="It did not happen.",
        source_url=SOURCE,
        known_at=timezone.now(),
    )
    wait_for(lambda: timezone.now() > proposal.challenge_until, what="the window to end")

    with celery_worker(name="doomed", env={**BEAT, PAUSE_ENV: "120"}, beat=True) as doomed:
        wait_for(settlement_in_progress, what="the settlement of the finalized proposal to be mid-transaction")
        doomed.kill()
    wait_for(lambda: not settlement_in_progress(), what="PostgreSQL to drop the dead connection", timeout=10)
    # Finalized (committed before the settlement began), not paid.
    assert proposal_state(proposal) == Proposal.State.FINAL
    assert market_status(market) == Market.Status.RESOLVING
    assert not Payout.objects.filter(market=market).exists()

    with celery_worker(name="rescuer", env=BEAT, beat=True):
        assert settlements_sweep(older_than_seconds=0) == 1
        wait_for(lambda: market_status(market) == Market.Status.RESOLVED, what="the rescue")

    after = balances(traders)
    assert {user.pk: after[user.pk] - before[user.pk] for user in traders} == expected
    assert Resolution.objects.filter(market=market).count() == 1
    assert markets_reconcile() == []


def test_holders_hear_of_a_proposal_and_of_its_challenge_in_the_app_and_by_mail(
    make_market, make_user, settings, tmp_path
):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(hours=1)
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("5")
    resolver = make_user("resolver", is_staff=True)
    market = make_market("told", created_by=resolver, now=timezone.now() - timedelta(hours=1))
    holders = [make_user(name) for name in ("ana", "ben", "cy")]
    for holder in holders:
        holder.email = f"{holder.username}@example.org"
        holder.save(update_fields=["email"])
        buy(holder, market, "YES", "10")
    ana = holders[0]
    staff, trader = APIClient(), APIClient()
    staff.force_login(resolver)
    trader.force_login(ana)
    mail_env = {"EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend", "EMAIL_FILE_PATH": str(tmp_path)}

    with celery_worker(name="proposal-notices", env=mail_env):
        response = staff.post(
            f"/api/v1/markets/{market.slug}/proposals/",
            {
                "kind": "outcome",
                "outcome": "NO",
                "reason": "It did not happen.",
                "source_url": SOURCE,
                "known_at": timezone.now().isoformat(),
            },
            format="json",
        )
        assert response.status_code == 201, response.content
        proposal_id = response.json()["id"]
        proposed = Notification.objects.filter(event_key=f"resolution_proposed:{proposal_id}")
        wait_for(lambda: proposed.count() == 3, what="the proposal's notifications")
        wait_for(
            lambda: sum("A resolution was proposed for" in m for m in mails(tmp_path)) == 3,
            what="the proposal's e-mails",
        )

        path = f"/api/v1/markets/{market.slug}/proposals/{proposal_id}/challenges/"
        assert trader.post(path, {"reason": "It did."}, format="json").status_code == 201
        challenged = Notification.objects.filter(event_key=f"resolution_challenged:{proposal_id}")
        wait_for(lambda: challenged.count() == 2, what="the challenge's notifications")
        wait_for(lambda: sum("was challenged" in m for m in mails(tmp_path)) == 2, what="the challenge's e-mails")

    assert sorted(challenged.values_list("recipient__username", flat=True)) == ["ben", "cy"]
    sent = mails(tmp_path)
    assert len(sent) == 5, sent
    assert all("/accounts/notifications/unsubscribe/" in m for m in sent)
    assert set(Notification.objects.values_list("email", flat=True)) == {Notification.Email.SENT}
