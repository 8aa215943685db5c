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
from markets.models import Market, MarketEvent, Outcome, Proposal, Resolution
from markets.services.changes import market_changed
from markets.services.orders import market_orders_cancel

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


def settlements_enqueue(*, market_ids: Sequence[int]) -> None:
    """settlement_enqueue for many markets: after commit, every message through one producer (one broker
    connection) instead of one each."""
    transaction.on_commit(partial(_settlements_send, list(market_ids)))


def _settlements_send(market_ids: list[int]) -> None:
    """As _settlement_send: a message the broker cannot take is left to the sweeper."""
    sent = 0
    try:
        with current_app.producer_or_acquire() as producer:
            for market_id in market_ids:
                current_app.send_task(SETTLE_TASK, args=[market_id], producer=producer)
                sent += 1
    except (KombuOperationalError, RedisError, OSError):
        logger.warning(
            "%d of %d settlements not queued, the broker is unreachable; the sweeper will",
            len(market_ids) - sent,
            len(market_ids),
        )


RESOLVE_PERMISSION = "markets.resolve_market"


def user_is_resolver(user: object) -> bool:
    """A resolver: an active staff member holding the `resolve_market` permission (superusers hold all)."""
    return isinstance(user, User) and user.is_active and user.is_staff and user.has_perm(RESOLVE_PERMISSION)


def resolver_check(user: object) -> User:
    """The user, if a resolver; PermissionDenied otherwise (every website, admin and API path calls this)."""
    if isinstance(user, User) and user_is_resolver(user):
        return user
    raise PermissionDenied("Only resolvers (staff with the resolve_market permission) resolve markets.")


def reason_check(reason: str | None, *, what: str = "resolution") -> str:
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput(f"Give the reason for this {what}.", field="reason")
    if len(reason) > MAX_REASON_LENGTH:
        raise InvalidInput(f"Keep the reason under {MAX_REASON_LENGTH} characters.", field="reason")
    return reason


def known_at_check(known_at: datetime | None, *, market: Market, now: datetime) -> datetime | None:
    """When the answer became known: not in the future, not before the market opened."""
    if known_at is None:
        return None
    if timezone.is_naive(known_at):
        raise InvalidInput("Give known_at with its time zone, e.g. 2024-06-26T10:00:00Z.", field="known_at")
    if known_at > now:
        raise InvalidInput("The answer cannot have become known in the future.", field="known_at")
    if market.opens_at is not None and known_at < market.opens_at:
        raise InvalidInput("The answer cannot have become known before the market opened.", field="known_at")
    return known_at


def resolution_terms(
    *, outcomes: list[Outcome], kind: str, outcome_code: str | None, split: Sequence[object] | None
) -> tuple[Outcome | None, list[str] | None]:
    """The winning outcome (kind outcome) and the payout per share of each outcome (None when annulled)."""
    if kind not in Resolution.Kind.values:
        raise InvalidInput("Kind is outcome, split or annulled.", field="kind")
    if kind == Resolution.Kind.OUTCOME:
        winner = next((o for o in outcomes if o.code == (outcome_code or "").strip()), None)
        if winner is None:
            raise InvalidInput("Choose one of the market's outcomes.", field="outcome")
        return winner, ["1" if o.pk == winner.pk else "0" for o in outcomes]
    if kind == Resolution.Kind.SPLIT:
        return None, [str(share) for share in _split_payouts(split or [], len(outcomes))]
    return None, None


class ResolvedVia:
    DIRECT = "direct"
    PROPOSAL = "proposal"


def resolution_event(
    *, resolution: Resolution, outcomes: Sequence[Outcome], via: str, proposal_id: int | None = None
) -> MarketEvent:
    """The market log's row for a resolution (unsaved: the caller writes it in the resolution's transaction).
    Its actor is the resolver the resolution names; its time is the resolution's."""
    winner = next((outcome for outcome in outcomes if outcome.pk == resolution.outcome_id), None)
    codes = [outcome.code for outcome in outcomes]
    return MarketEvent(
        market_id=resolution.market_id,
        kind=MarketEvent.Kind.RE_RESOLVED if resolution.supersedes_id else MarketEvent.Kind.RESOLVED,
        actor_id=resolution.created_by_id,
        reason=resolution.reason,
        data={
            "resolution": resolution.pk,
            "kind": resolution.kind,
            "outcome": winner.code if winner else None,
            "label": winner.label if winner else None,
            # A list, in the outcomes' order (a jsonb object would not keep it).
            "payouts": (
                [{"code": code, "share": share} for code, share in zip(codes, resolution.payouts, strict=False)]
                if resolution.payouts is not None
                else None
            ),
            "known_at": resolution.known_at.isoformat() if resolution.known_at else None,
            "via": via,
            "proposal": proposal_id,
            "supersedes": resolution.supersedes_id,
        },
        created_at=resolution.created_at,
    )


def market_resolve(
    *,
    market: Market,
    user: User | AnonymousUser,
    kind: str,
    reason: str,
    outcome_code: str | None = None,
    split: Sequence[object] | None = None,
    known_at: datetime | None = None,
    now: datetime | None = None,
) -> Resolution:
    """Records a resolution (or re-resolution, or annulment) by a resolver and enqueues its settlement:
    "resolve now", with no challenge window (markets.services.proposals has the window).

    An open market is closed first. A market already resolving, resolved or annulled is re-resolved:
    the current resolution is superseded and the settlement reverses whatever it had paid. A proposal
    still open to challenge is withdrawn; one with challenges awaiting a decision refuses this (decide
    them first: upholding a challenge is what leads to a direct resolution). With `known_at` before the
    close, the trades after it are voided before settlement (markets.services.voiding).
    """
    resolver = resolver_check(user)
    now = now or timezone.now()
    reason = reason_check(reason)
    if kind not in Resolution.Kind.values:
        raise InvalidInput("Kind is outcome, split or annulled.", field="kind")

    with transaction.atomic():
        market = market_lock(market_id=market.pk)
        if market.status == Market.Status.DRAFT:
            raise MarketStateError("A draft market never opened; there is nothing to resolve.")
        known_at = known_at_check(known_at, market=market, now=now)
        outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
        winner, payouts = resolution_terms(outcomes=outcomes, kind=kind, outcome_code=outcome_code, split=split)

        previous = Resolution.objects.select_for_update().filter(market=market, is_current=True).first()
        if (
            previous is not None
            and previous.kind == kind
            and previous.payouts == payouts
            and previous.known_at == known_at
        ):
            # The resolution the market already has: a double-submitted form or a retried request. A new
            # row would only reverse the settlement and pay it again, and clutter the audit trail.
            return previous
        live = Proposal.objects.filter(market=market, state__in=Proposal.LIVE_STATES).first()
        if live is not None:
            if live.state == Proposal.State.CHALLENGED:
                raise MarketStateError(
                    "This market's proposal has challenges awaiting a decision: uphold or reject them first."
                )
            live.state = Proposal.State.WITHDRAWN
            live.decided_by = resolver
            live.decided_at = now
            live.decision_note = "Withdrawn: resolved directly."
            live.save(update_fields=["state", "decided_by", "decided_at", "decision_note"])
        if market.status == Market.Status.OPEN:
            market.status = Market.Status.CLOSED
            market.closed_at = now
        market_orders_cancel(market_id=market.pk, reason="market resolved", now=now)
        if previous is not None:
            previous.is_current = False
            previous.save(update_fields=["is_current"])
        resolution = Resolution.objects.create(
            market=market,
            kind=kind,
            payouts=payouts,
            outcome=winner,
            reason=reason,
            known_at=known_at,
            created_by=resolver,
            created_at=now,
            supersedes=previous,
        )
        resolution_event(resolution=resolution, outcomes=outcomes, via=ResolvedVia.DIRECT).save()
        market.status = Market.Status.RESOLVING
        market.resolved_at = None
        market.save(update_fields=["status", "closed_at", "resolved_at"])
        market_changed(market_id=market.pk)
        settlement_enqueue(market_id=market.pk)
    return resolution
