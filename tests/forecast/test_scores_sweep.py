"""The scores sweeper: scoring lost between a committed settlement and its message is re-enqueued, once."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.utils import timezone

from config.celery import app
from forecast import services, tasks
from forecast.models import MarketScore
from markets.models import Market, Resolution
from markets.services import market_resolve, market_settle

pytestmark = pytest.mark.django_db

FAR_FUTURE = timezone.now() + timedelta(days=365)


@pytest.fixture
def enqueued(monkeypatch) -> list[int]:
    """Market ids the sweep enqueues for scoring (the broker is not needed to see them)."""
    calls: list[int] = []
    monkeypatch.setattr(tasks.market_score, "delay", lambda market_id: calls.append(market_id))
    return calls


def sweep_and_score(enqueued: list[int]) -> list[int]:
    """One sweep, with every scoring it enqueues run as a worker would."""
    enqueued.clear()
    tasks.scores_sweep(older_than_seconds=0)
    for market_id in enqueued:
        services.market_score(market_id=market_id)
    return list(enqueued)


def test_a_settled_market_whose_scoring_was_lost_is_scored_by_the_sweep(traded_market, enqueued):
    scenario = traded_market()
    # Settled, but the worker died before sending market_score: no scores at all.
    scenario.resolve(outcome="YES", at=scenario.closes_at + timedelta(days=1))
    assert not MarketScore.objects.filter(market=scenario.market).exists()

    assert sweep_and_score(enqueued) == [scenario.market.pk]

    current = Resolution.objects.get(market=scenario.market, is_current=True)
    assert set(MarketScore.objects.filter(market=scenario.market).values_list("resolution_id", flat=True)) == {
        current.pk
    }
    assert MarketScore.objects.filter(market=scenario.market).count() == 3
    # Nothing left to do: the next sweep enqueues nothing.
    assert sweep_and_score(enqueued) == []


def test_scores_of_an_earlier_resolution_are_replaced_after_a_re_resolution(traded_market, enqueued):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at + timedelta(days=1))
    services.market_score(market_id=scenario.market.pk)
    assert sweep_and_score(enqueued) == []

    scenario.resolve(outcome="NO", at=scenario.closes_at + timedelta(days=2))
    current = Resolution.objects.get(market=scenario.market, is_current=True)
    assert MarketScore.objects.filter(market=scenario.market).exclude(resolution=current).exists()

    assert sweep_and_score(enqueued) == [scenario.market.pk]
    assert set(MarketScore.objects.filter(market=scenario.market).values_list("resolution_id", flat=True)) == {
        current.pk
    }
    assert sweep_and_score(enqueued) == []


def test_an_annulled_market_that_still_has_scores_is_rescored_to_none(traded_market, enqueued):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at + timedelta(days=1))
    services.market_score(market_id=scenario.market.pk)

    scenario.resolve(kind="annulled", at=scenario.closes_at + timedelta(days=2))
    assert scenario.market.status == Market.Status.ANNULLED

    assert sweep_and_score(enqueued) == [scenario.market.pk]
    assert not MarketScore.objects.filter(market=scenario.market).exists()
    assert sweep_and_score(enqueued) == []


def test_a_settlement_whose_scoring_may_still_be_queued_is_left_alone(traded_market, enqueued):
    scenario = traded_market()
    settled_at = scenario.closes_at + timedelta(days=1, minutes=1)
    scenario.resolve(outcome="YES", at=scenario.closes_at + timedelta(days=1))
    assert Resolution.objects.get(market=scenario.market, is_current=True).settled_at == settled_at

    tasks.scores_sweep(older_than_seconds=(timezone.now() - settled_at).total_seconds() + 60)
    assert enqueued == []
    tasks.scores_sweep(older_than_seconds=(timezone.now() - settled_at).total_seconds() - 60)
    assert enqueued == [scenario.market.pk]


def test_an_untraded_market_and_an_unsettled_one_are_never_enqueued(make_market, make_user, traded_market, enqueued):
    staff = make_user("staff-quiet", is_staff=True)
    opens_at = timezone.now() - timedelta(days=10)
    quiet = make_market(
        slug="quiet-market",
        question="Will anyone trade this?",
        kind=Market.Kind.BINARY,
        liquidity=Decimal("50"),
        closes_at=opens_at + timedelta(days=2),
        now=opens_at,
    )
    market_resolve(market=quiet, user=staff, kind="outcome", outcome_code="NO", reason="Nobody did.")
    market_settle(market_id=quiet.pk)
    pending = traded_market("pending-market")
    market_resolve(market=pending.market, user=pending.staff, kind="outcome", outcome_code="YES", reason="Soon.")

    assert sweep_and_score(enqueued) == []


def test_the_sweep_is_on_the_beat_schedule():
    entries = [
        entry for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == "forecast.tasks.scores_sweep"
    ]
    assert len(entries) == 1
    assert "forecast.tasks.scores_sweep" in app.tasks
