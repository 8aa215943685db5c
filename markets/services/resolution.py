"""Resolution (staff): record how a market resolved; settlement follows on a Celery worker.

The admin, the staff page and the API all call `market_resolve`. It writes the Resolution row, which is
also the audit row (who, when, what, why), moves the market to `resolving` and enqueues the settlement
after commit. A re-resolution is the same call on a resolved or annulled market: the new row supersedes
the current one and the settlement task reverses the old payouts before paying the new ones.

Annulment refunds each trader the sum of `Position.net_cost` over their positions in the market: what
they paid in, net of what they took out. A trader whose net is negative (they sold at a profit) keeps
that profit and receives nothing. Refunds come from the escrow; what is left goes to the house, and if
the refunds exceed the escrow (other traders' profits were taken out of it) the house pays the
difference in, so every refund is paid in full.
"""

import logging
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from functools import partial

from celery import current_app
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from accounts.models import User
from accounts.money import CREDIT_PLACES, CREDIT_QUANTUM
from config.core.numbers import ascii_decimal
from markets.errors import InvalidInput, MarketStateError
from markets.locks import market_lock
from markets.models import Market, Outcome, Resolution
from markets.services.changes import market_changed

logger = logging.getLogger(__name__)

SETTLE_TASK = "markets.tasks.market_settle"
MAX_REASON_LENGTH = 2000
ONE = Decimal(1)


def _split_payouts(values: Sequence[object], count: int) -> list[Decimal]:
    if len(values) != count:
        raise InvalidInput(f"Give one share of the split per outcome ({count}).", field="split")
    split: list[Decimal] = []
    for value in values:
        try:
            number = ascii_decimal(value)
        except ValueError:
            raise InvalidInput(
                "Each share of the split must be a number written with the digits 0-9, e.g. 0.25.", field="split"
            ) from None
        if not number.is_finite() or not 0 <= number <= 1:
            raise InvalidInput("Each share of the split is between 0 and 1.", field="split")
        if number != number.quantize(CREDIT_QUANTUM):
            raise InvalidInput(f"Use at most {CREDIT_PLACES} decimal places.", field="split")
        split.append(number.quantize(CREDIT_QUANTUM))
    if sum(split, Decimal(0)) != ONE:
        raise InvalidInput("The split must sum to exactly 1.", field="split")
    return split


def settlement_enqueue(*, market_id: int) -> None:
    """After commit, by name: the worker must see the committed resolution, and a rollback sends nothing."""
    transaction.on_commit(partial(_settlement_send, market_id))


def _settlement_send(market_id: int) -> None:
    """Sends the settlement message. If the broker cannot take it, the resolution stands all the same (it is
    committed, and the market reads `resolving`): the sweeper (markets.tasks.settlements_sweep) enqueues
    every market stuck in `resolving` once the broker is back, so nothing is lost and nobody sees an error."""
    try:
        current_app.send_task(SETTLE_TASK, args=[market_id])
    except (KombuOperationalError, RedisError, OSError):
        logger.warning("market %s: settlement not queued, the broker is unreachable; the sweeper will", market_id)


def market_resolve(
    *,
    market: Market,
    user: User | AnonymousUser,
    kind: str,
    reason: str,
    outcome_code: str | None = None,
    split: Sequence[object] | None = None,
    now: datetime | None = None,
) -> Resolution:
    """Records a resolution (or re-resolution, or annulment) by staff and enqueues its settlement.

    An open market is closed first. A market already resolving, resolved or annulled is re-resolved:
    the current resolution is superseded and the settlement reverses whatever it had paid.
    """
    if not (isinstance(user, User) and user.is_staff):
        raise PermissionDenied("Only staff resolve markets.")
    now = now or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("Give the reason for this resolution.", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"Keep the reason under {MAX_REASON_LENGTH} characters.", field="reason")
    if kind not in Resolution.Kind.values:
        raise InvalidInput("Kind is outcome, split or annulled.", field="kind")

    with transaction.atomic():
        market = market_lock(market_id=market.pk)
        if market.status == Market.Status.DRAFT:
            raise MarketStateError("A draft market never opened; there is nothing to resolve.")
        outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
        winner: Outcome | None = None
        payouts: list[str] | None = None
        if kind == Resolution.Kind.OUTCOME:
            winner = next((o for o in outcomes if o.code == (outcome_code or "").strip()), None)
            if winner is None:
                raise InvalidInput("Choose one of the market's outcomes.", field="outcome")
            payouts = ["1" if o.pk == winner.pk else "0" for o in outcomes]
        elif kind == Resolution.Kind.SPLIT:
            payouts = [str(share) for share in _split_payouts(split or [], len(outcomes))]

        previous = Resolution.objects.select_for_update().filter(market=market, is_current=True).first()
        if previous is not None and previous.kind == kind and previous.payouts == payouts:
            # The resolution the market already has: a double-submitted form or a retried request. A new
            # row would only reverse the settlement and pay it again, and clutter the audit trail.
            return previous
        if market.status == Market.Status.OPEN:
            market.status = Market.Status.CLOSED
            market.closed_at = now
        if previous is not None:
            previous.is_current = False
            previous.save(update_fields=["is_current"])
        resolution = Resolution.objects.create(
            market=market,
            kind=kind,
            payouts=payouts,
            outcome=winner,
            reason=reason,
            created_by=user,
            created_at=now,
            supersedes=previous,
        )
        market.status = Market.Status.RESOLVING
        market.resolved_at = None
        market.save(update_fields=["status", "closed_at", "resolved_at"])
        market_changed(market_id=market.pk)
        settlement_enqueue(market_id=market.pk)
    return resolution
