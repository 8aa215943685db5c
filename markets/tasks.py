"""Thin Celery tasks: take ids, call a service. Schedules live in config/settings/base.py."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import OperationalError
from django.utils import timezone

from accounts.tasks import notifications_email_send
from markets import hooks, services
from markets.services import datasets, notifications, orders, standing

logger = logging.getLogger(__name__)

# A settlement normally starts within seconds; after this long its message is presumed lost.
STUCK_AFTER = timedelta(minutes=2)


@shared_task(name="markets.tasks.markets_close_due")
def markets_close_due() -> int:
    closed = services.markets_close_due()
    if closed:
        logger.info("closed %d markets whose close time had passed", closed)
    return closed


@shared_task(name="markets.tasks.orders_expire_due")
def orders_expire_due() -> int:
    expired = orders.orders_expire_due()
    if expired:
        logger.info("expired %d limit orders", expired)
    return expired


@shared_task(name="markets.tasks.standing_forecasts_expire_due")
def standing_forecasts_expire_due() -> int:
    expired = standing.standing_forecasts_expire_due()
    if expired:
        logger.info("expired %d standing forecasts", expired)
    return expired


@shared_task(name="markets.tasks.ledger_reconcile")
def ledger_reconcile() -> int:
    return services.reconciliation_run().violation_count


@shared_task(
    name="markets.tasks.market_settle",
    # Acknowledged only once the settlement committed: a worker killed mid-task leaves the message to
    # be redelivered (and the sweeper below re-enqueues it in any case).
    acks_late=True,
    reject_on_worker_lost=True,
    # A deadlock or a dropped connection rolls the whole settlement back; trying again is safe.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=10,
)
def market_settle(market_id: int) -> bool:
    result = services.market_settle(market_id=market_id)
    if result is None:
        return False
    logger.info(
        "settled market %s: resolution %s, %d payouts, paid %s, released %s",
        market_id,
        result.resolution_id,
        result.payout_count,
        result.paid_total,
        result.released_total,
    )
    # Forecast registers its scoring here (markets.hooks): markets never imports forecast.
    hooks.market_settled(market_id=market_id)
    return True


@shared_task(name="markets.tasks.settlements_sweep")
def settlements_sweep(older_than_seconds: float = STUCK_AFTER.total_seconds()) -> int:
    """Re-enqueues settlements stuck in `resolving` (lost message, killed worker, Redis restart)."""
    market_ids = services.markets_stuck_in_resolving(older_than=timedelta(seconds=older_than_seconds))
    for market_id in market_ids:
        logger.warning("market %s is stuck in resolving; re-enqueuing its settlement", market_id)
        market_settle.delay(market_id)
    return len(market_ids)


@shared_task(name="markets.tasks.dataset_build")
def dataset_build() -> str:
    """Builds today's dataset of resolved markets; running it twice the same day rebuilds the same file."""
    dataset = datasets.dataset_build()
    logger.info("built dataset %s (%d bytes)", dataset.name, dataset.size)
    return dataset.name


@shared_task(name="markets.tasks.proposals_finalize_due")
def proposals_finalize_due() -> int:
    """Proposals whose challenge window ended unchallenged become resolutions; their settlements follow."""
    finalized = services.proposals_finalize_due()
    if finalized:
        logger.info("finalized %d proposals whose challenge window had ended", finalized)
    return finalized


@shared_task(name="markets.tasks.candles_roll_up")
def candles_roll_up() -> int:
    """Rolls up the price candles completed since the last run; concurrent runs share the work."""
    return services.candles_roll_up()


@shared_task(
    name="markets.tasks.market_resolved_notify",
    acks_late=True,
    # The fan-out is one statement, exactly once per event and recipient: running it again is safe.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=10,
)
def market_resolved_notify(market_id: int) -> int:
    """Tells a settled market's traders and followers; then mails those who want it at once."""
    written = notifications.market_resolved_notify(market_id=market_id)
    logger.info("market %s resolved: %d notifications", market_id, written)
    if written:
        notifications_email_send.delay()
    return written


def market_resolved_notify_enqueue(market_id: int) -> None:
    """The markets.hooks market_settled hook (registered in MarketsConfig.ready)."""
    market_resolved_notify.delay(market_id)


@shared_task(
    name="markets.tasks.proposal_notify",
    acks_late=True,
    # One statement, exactly once per proposal event and recipient: running it again is safe.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=10,
)
def proposal_notify(proposal_id: int, event: str) -> int:
    """Tells the holders of a market that a resolution was proposed or challenged; then mails those who want
    it at once. Enqueued after the proposal's (or first challenge's) commit by markets.services.proposals."""
    written = notifications.proposal_notify(proposal_id=proposal_id, event=event)
    logger.info("proposal %s %s: %d notifications", proposal_id, event, written)
    if written:
        notifications_email_send.delay()
    return written


@shared_task(name="markets.tasks.resolution_notifications_sweep")
def resolution_notifications_sweep(older_than_seconds: float = STUCK_AFTER.total_seconds()) -> int:
    """Re-enqueues the resolution notices of markets settled in the last day that nobody was told of, and the
    notices of proposals made or challenged in the last day that never reached the holders."""
    now = timezone.now()
    after, before = now - timedelta(days=1), now - timedelta(seconds=older_than_seconds)
    market_ids = notifications.resolutions_unannounced(settled_after=after, settled_before=before)
    for market_id in market_ids:
        logger.warning("market %s: its resolution was never announced; re-enqueuing the notifications", market_id)
        market_resolved_notify.delay(market_id)
    proposals = notifications.proposals_unannounced(after=after, before=before)
    for proposal_id, event in proposals:
        logger.warning("proposal %s: %s was never announced; re-enqueuing the notifications", proposal_id, event)
        proposal_notify.delay(proposal_id, event)
    return len(market_ids) + len(proposals)


@shared_task(name="markets.tasks.market_events_notify", acks_late=True)
def market_events_notify() -> int:
    """Hourly: markets closing within a day (to holders) and markets that moved 10 points (to followers)."""
    written = notifications.markets_closing_notify() + notifications.markets_moved_notify()
    if written:
        notifications_email_send.delay()
    return written
