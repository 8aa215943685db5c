"""Thin Celery tasks: take ids, call a service. Schedules live in config/settings/base.py."""

import logging

from celery import shared_task

from markets import services

logger = logging.getLogger(__name__)


@shared_task(name="markets.tasks.markets_close_due")
def markets_close_due() -> int:
    closed = services.markets_close_due()
    if closed:
        logger.info("closed %d markets whose close time had passed", closed)
    return closed


@shared_task(name="markets.tasks.ledger_reconcile")
def ledger_reconcile() -> int:
    violations = services.markets_reconcile()
    for violation in violations:
        logger.error("LEDGER INVARIANT VIOLATED: %s", violation)
    return len(violations)
