"""Thin Celery tasks: take ids, call a service. Schedules live in config/settings/base.py."""

import logging
from datetime import timedelta

from celery import shared_task
from django.db import OperationalError, transaction
from django.utils import timezone

from config.core.cache import cache_add, cache_delete
from forecast import selectors, services

logger = logging.getLogger(__name__)

# While a rebuild is queued, further requests for one are dropped: a burst of settlements rebuilds once.
REBUILD_PENDING_KEY = "forecast:leaderboards-rebuild-pending"
REBUILD_PENDING_SECONDS = 300
# Settlement enqueues scoring as it commits; only after this long is the scoring presumed lost.
SCORES_STALE_AFTER = timedelta(minutes=2)


def leaderboards_rebuild_enqueue() -> None:
    """Queues one leaderboard rebuild after the current transaction commits, unless one is already queued."""

    def enqueue() -> None:
        # Without the cache (None: unknown) nothing can be coalesced; an extra rebuild is harmless.
        if cache_add(REBUILD_PENDING_KEY, 1, timeout=REBUILD_PENDING_SECONDS) is not False:
            leaderboards_rebuild.delay()

    transaction.on_commit(enqueue)


@shared_task(
    name="forecast.tasks.market_score",
    acks_late=True,
    # A deadlock or a dropped connection rolls the whole scoring back; running it again is safe.
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=10,
)
def market_score(market_id: int) -> int:
    """Enqueued by settlement: (re)scores the market from its current resolution, then refreshes the boards."""
    result = services.market_score(market_id=market_id)
    logger.info("market %d: %d scores written, %d replaced", market_id, result.scored, result.removed)
    leaderboards_rebuild_enqueue()
    return result.scored


def market_score_enqueue(market_id: int) -> None:
    """The markets.hooks market_settled hook (registered in ForecastConfig.ready): scores the market."""
    market_score.delay(market_id)


@shared_task(name="forecast.tasks.leaderboards_rebuild", acks_late=True)
def leaderboards_rebuild() -> int:
    # Cleared first: a score written while this runs queues a fresh rebuild rather than being missed.
    cache_delete(REBUILD_PENDING_KEY)  # if the cache is unreachable, the key expires by itself
    return services.leaderboards_rebuild()


@shared_task(name="forecast.tasks.scores_sweep")
def scores_sweep(older_than_seconds: float = SCORES_STALE_AFTER.total_seconds()) -> int:
    """Re-enqueues scoring of settled markets whose scores do not match their current resolution: a worker
    that died between committing a settlement and sending market_score leaves nothing else to resend it."""
    market_ids = selectors.markets_with_stale_scores(
        settled_before=timezone.now() - timedelta(seconds=older_than_seconds)
    )
    for market_id in market_ids:
        logger.warning("market %d: scores do not match its settled resolution; re-enqueuing scoring", market_id)
        market_score.delay(market_id)
    return len(market_ids)
