"""Writes of the markets app: market lifecycle and trading.

Lock order everywhere: the market row, then wallet rows by id. Locks are held for pricing and
writes only, inside one short transaction.
"""

import hashlib
import json
import math
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import IntegrityError, transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import ZERO, credits_to_pay
from accounts.services import Violation, ledger_post, ledger_reconcile, ledger_transfer, system_account, wallet_lock
from markets import lmsr
from markets.errors import (
    IdempotencyConflict,
    InsufficientFunds,
    InsufficientShares,
    InvalidInput,
    MarketClosed,
    MarketStateError,
    PriceMoved,
)
from markets.models import IdempotencyKey, Market, Outcome, Position, PricePoint, Trade
from markets.pricing import MAX_AMOUNT, TradeQuote, parse_positive_decimal, quote_trade

OUTCOME_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LIQUIDITY = Decimal("10000000")
BINARY_OUTCOMES = (("YES", "Yes"), ("NO", "No"))

# Callbacks run after a trade commits (e.g. refreshing cached prices); registered by the apps that need them.
after_trade_commit: list[Callable[[int], None]] = []


def _validate_probabilities(values: Sequence[object], count: int) -> list[float]:
    if len(values) != count:
        raise InvalidInput(f"Give one initial probability per outcome ({count}).", field="initial_probabilities")
    probabilities: list[float] = []
    for value in values:
        try:
            number = float(str(value))
        except ValueError:
            raise InvalidInput("Initial probabilities must be numbers.", field="initial_probabilities") from None
        if not math.isfinite(number) or not 0.001 <= number <= 0.999:
            raise InvalidInput(
                "Each initial probability must be between 0.001 and 0.999.", field="initial_probabilities"
            )
        probabilities.append(number)
    if abs(sum(probabilities) - 1.0) > 1e-9:
        raise InvalidInput("Initial probabilities must sum to 1.", field="initial_probabilities")
    # Renormalise away the last float crumbs so the LMSR starts exactly where asked.
    total = math.fsum(probabilities)
    return [p / total for p in probabilities]


@transaction.atomic
def market_create(
    *,
    slug: str,
    question: str,
    kind: str,
    liquidity: object,
    closes_at: datetime,
    outcomes: Sequence[tuple[str, str]] | None = None,
    initial_probabilities: Sequence[object] | None = None,
    description: str = "",
    resolution_criteria: str = "",
    category: str = "",
    created_by: User | None = None,
    open_now: bool = True,
    now: datetime | None = None,
) -> Market:
    """Creates a market with its outcomes and escrow; opening it moves the subsidy from the house."""
    now = now or timezone.now()
    slug = slug.strip()
    if not SLUG.match(slug) or len(slug) > 120:
        raise InvalidInput("Use lowercase letters, digits and single hyphens.", field="slug")
    if Market.objects.filter(slug=slug).exists():
        raise InvalidInput("A market with this slug already exists.", field="slug")
    question = question.strip()
    if not question or len(question) > 300:
        raise InvalidInput("Ask a question of 1 to 300 characters.", field="question")
    if kind not in Market.Kind.values:
        raise InvalidInput("Kind is binary or multiple.", field="kind")
    if kind == Market.Kind.BINARY:
        outcomes = outcomes or BINARY_OUTCOMES
        if [code for code, _label in outcomes] != ["YES", "NO"]:
            raise InvalidInput("A binary market has the outcomes YES and NO.", field="outcomes")
    if not outcomes or len(outcomes) < 2:
        raise InvalidInput("A market needs at least two outcomes.", field="outcomes")
    if len(outcomes) > 50:
        raise InvalidInput("A market has at most 50 outcomes.", field="outcomes")
    codes = [code for code, _label in outcomes]
    if len(set(codes)) != len(codes) or not all(OUTCOME_CODE.match(code) for code in codes):
        raise InvalidInput(
            "Outcome codes are unique, uppercase letters, digits, '-' or '_' (at most 32).", field="outcomes"
        )
    if not all(label.strip() and len(label) <= 120 for _code, label in outcomes):
        raise InvalidInput("Every outcome needs a label of at most 120 characters.", field="outcomes")
    b = parse_positive_decimal(liquidity, field="liquidity", maximum=MAX_LIQUIDITY).quantize(Decimal("0.0001"))
    if b <= ZERO:
        raise InvalidInput("Liquidity must be positive.", field="liquidity")
    probabilities = _validate_probabilities(initial_probabilities or [1 / len(outcomes)] * len(outcomes), len(outcomes))
    if open_now and closes_at <= now:
        raise InvalidInput("The close time must be in the future.", field="closes_at")

    escrow = Account.objects.create(kind=Account.Kind.ESCROW, key=f"escrow:pending:{uuid.uuid4().hex}")
    market = Market.objects.create(
        slug=slug,
        question=question,
        description=description.strip(),
        resolution_criteria=resolution_criteria.strip(),
        category=category.strip(),
        kind=kind,
        liquidity=b,
        escrow=escrow,
        closes_at=closes_at,
        created_by=created_by,
    )
    Account.objects.filter(pk=escrow.pk).update(key=f"escrow:{market.pk}")
    Outcome.objects.bulk_create(
        Outcome(
            market=market,
            code=code,
            label=label.strip(),
            index=index,
            initial_probability=probability,
            probability=probability,
        )
        for index, ((code, label), probability) in enumerate(zip(outcomes, probabilities, strict=True))
    )
    if open_now:
        market = market_open(market=market, now=now)
    return market


@transaction.atomic
def market_open(*, market: Market, now: datetime | None = None) -> Market:
    """Opens a draft market: the house funds the maker's worst-case loss into the escrow."""
    now = now or timezone.now()
    market = Market.objects.select_for_update().get(pk=market.pk)
    if market.status != Market.Status.DRAFT:
        raise MarketStateError(f"Only a draft market can be opened; this one is {market.status}.")
    if market.closes_at <= now:
        raise InvalidInput("The close time must be in the future.", field="closes_at")
    outcomes = list(market.outcomes.all())
    subsidy = credits_to_pay(
        lmsr.worst_case_loss(float(market.liquidity), [o.initial_probability for o in outcomes]) * (1 + 1e-12)
    )
    ledger_transfer(
        source=system_account(kind=Account.Kind.HOUSE),
        destination=market.escrow,
        amount=subsidy,
        kind=LedgerTransaction.Kind.SUBSIDY,
        memo=f"Subsidy for {market.slug}",
        reference=f"subsidy:{market.pk}",
    )
    market.status = Market.Status.OPEN
    market.subsidy = subsidy
    market.opens_at = now
    market.save(update_fields=["status", "subsidy", "opens_at"])
    PricePoint.objects.create(market=market, probabilities=[o.initial_probability for o in outcomes], created_at=now)
    return market


def market_close(*, market: Market, now: datetime | None = None) -> Market:
    """Stops trading on an open market (staff, or the close time passing)."""
    now = now or timezone.now()
    with transaction.atomic():
        market = Market.objects.select_for_update().get(pk=market.pk)
        if market.status != Market.Status.OPEN:
            raise MarketStateError(f"Only an open market can be closed; this one is {market.status}.")
        market.status = Market.Status.CLOSED
        market.closed_at = now
        market.save(update_fields=["status", "closed_at"])
    return market


def markets_close_due(*, now: datetime | None = None) -> int:
    """Closes every open market whose close time has passed; returns how many it closed."""
    now = now or timezone.now()
    return Market.objects.filter(status=Market.Status.OPEN, closes_at__lte=now).update(
        status=Market.Status.CLOSED, closed_at=now
    )


@dataclass(frozen=True)
class TradeResult:
    trade: Trade
    probabilities: list[float]
    balance: Decimal
    position_shares: Decimal
    # True when an idempotency key matched an earlier request and nothing was traded now.
    replayed: bool = False


def request_fingerprint(payload: dict[str, object]) -> str:
    """A stable hash of a trade request body, to tell a retry from a different request."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _parse_bound(value: object, field: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput("Enter a number.", field=field) from None
    if Decimal(str(value)) == ZERO and field == "min_proceeds":
        return ZERO
    return parse_positive_decimal(value, field=field, maximum=MAX_AMOUNT)


def _replay(user: User, key: str, fingerprint: str) -> TradeResult | None:
    record = IdempotencyKey.objects.select_related("trade").filter(user=user, key=key).first()
    if record is None:
        return None
    if record.fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
    trade = record.trade
    position = Position.objects.filter(user=user, outcome_id=trade.outcome_id).first()
    balance = Account.objects.get(user=user).balance
    return TradeResult(
        trade=trade,
        probabilities=list(trade.probabilities_after),
        balance=balance,
        position_shares=position.shares if position else ZERO,
        replayed=True,
    )


def trade_execute(
    *,
    user: User,
    market: Market,
    outcome_code: str,
    side: str,
    shares: object = None,
    amount: object = None,
    probability: object = None,
    max_cost: object = None,
    min_proceeds: object = None,
    idempotency_key: str | None = None,
    fingerprint: str | None = None,
    now: datetime | None = None,
) -> TradeResult:
    """Buys or sells one outcome by shares, amount or target probability, all or nothing.

    With an idempotency key, a retry with the same fingerprint returns the first result and a
    different request under the same key raises IdempotencyConflict.
    """
    bound_cost = _parse_bound(max_cost, "max_cost")
    bound_proceeds = _parse_bound(min_proceeds, "min_proceeds")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= 255:
        raise InvalidInput("An Idempotency-Key has 1 to 255 characters.", field="Idempotency-Key")
    fingerprint = fingerprint or request_fingerprint(
        {
            "market": market.pk,
            "outcome": outcome_code,
            "side": side,
            "shares": shares,
            "amount": amount,
            "probability": probability,
            "max_cost": max_cost,
            "min_proceeds": min_proceeds,
        }
    )
    try:
        return _trade_execute_locked(
            user=user,
            market_id=market.pk,
            outcome_code=outcome_code,
            side=side,
            quantities={"shares": shares, "amount": amount, "probability": probability},
            bound_cost=bound_cost,
            bound_proceeds=bound_proceeds,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            now=now,
        )
    except IntegrityError:
        # The same key raced in from another market's lock: the other request won; report it.
        if idempotency_key is None:
            raise
        replay = _replay(user, idempotency_key, fingerprint)
        if replay is None:
            raise
        return replay


@transaction.atomic
def _trade_execute_locked(
    *,
    user: User,
    market_id: int,
    outcome_code: str,
    side: str,
    quantities: dict[str, object],
    bound_cost: Decimal | None,
    bound_proceeds: Decimal | None,
    idempotency_key: str | None,
    fingerprint: str,
    now: datetime | None,
) -> TradeResult:
    market = Market.objects.select_for_update().get(pk=market_id)
    if idempotency_key is not None:
        replay = _replay(user, idempotency_key, fingerprint)
        if replay is not None:
            return replay
    now = now or timezone.now()
    if market.status != Market.Status.OPEN or market.closes_at <= now:
        raise MarketClosed("This market is closed for trading.")
    outcomes = list(market.outcomes.all())
    quote = quote_trade(
        liquidity=market.liquidity, outcomes=outcomes, outcome_code=outcome_code, side=side, **quantities
    )
    outcome = next(o for o in outcomes if o.code == outcome_code)
    wallet = wallet_lock(user_id=user.pk)
    position = Position.objects.select_for_update().filter(user=user, outcome=outcome).first()
    buying = side == Trade.Side.BUY

    if buying:
        if bound_cost is not None and quote.amount > bound_cost:
            raise PriceMoved(
                f"The price moved: this trade now costs {quote.amount:.2f}, more than your limit of {bound_cost:.2f}.",
                field="max_cost",
            )
        if quote.amount > wallet.balance:
            raise InsufficientFunds(
                f"This trade costs {quote.amount:.2f} credits but your balance is {wallet.balance:.2f}.",
                field="amount",
            )
        entries = [(wallet, -quote.amount), (market.escrow, quote.amount)]
        share_change, cost_change = quote.shares, quote.amount
    else:
        held = position.shares if position else ZERO
        if quote.shares > held:
            raise InsufficientShares(
                f"You hold {held:.2f} shares of {outcome.label}; this sale needs {quote.shares:.2f}.",
                field="shares",
            )
        if bound_proceeds is not None and quote.amount < bound_proceeds:
            raise PriceMoved(
                f"The price moved: this sale now pays {quote.amount:.2f}, "
                f"less than your limit of {bound_proceeds:.2f}.",
                field="min_proceeds",
            )
        entries = [(market.escrow, -quote.amount), (wallet, quote.amount)]
        share_change, cost_change = -quote.shares, -quote.amount

    ledger_transaction = ledger_post(
        kind=LedgerTransaction.Kind.TRADE,
        entries=entries,
        memo=f"{side} {quote.shares} {outcome.code} in {market.slug}",
    )
    trade = Trade.objects.create(
        market=market,
        outcome=outcome,
        user=user,
        side=side,
        shares=quote.shares,
        amount=quote.amount,
        probabilities_before=quote.probabilities_before,
        probabilities_after=quote.probabilities_after,
        ledger_transaction=ledger_transaction,
        created_at=now,
    )
    if position is None:
        position = Position.objects.create(
            user=user, market=market, outcome=outcome, shares=share_change, net_cost=cost_change
        )
    else:
        position.shares += share_change
        position.net_cost += cost_change
        position.save(update_fields=["shares", "net_cost", "updated_at"])
    Outcome.objects.filter(pk=outcome.pk).update(shares_outstanding=F("shares_outstanding") + share_change)
    for index, price in enumerate(quote.probabilities_after):
        outcomes[index].probability = price
    Outcome.objects.bulk_update(outcomes, ["probability"])
    Market.objects.filter(pk=market.pk).update(volume=F("volume") + quote.amount)
    PricePoint.objects.create(market=market, probabilities=quote.probabilities_after, trade=trade, created_at=now)
    if idempotency_key is not None:
        IdempotencyKey.objects.create(user=user, key=idempotency_key, fingerprint=fingerprint, trade=trade)
    for callback in after_trade_commit:
        transaction.on_commit(lambda callback=callback: callback(market.pk))  # type: ignore[misc]
    return TradeResult(
        trade=trade,
        probabilities=quote.probabilities_after,
        balance=wallet.balance,
        position_shares=position.shares,
    )


def trade_quote(*, market: Market, outcome_code: str, side: str, **quantities: object) -> TradeQuote:
    """What a trade would cost or pay now; writes nothing."""
    return quote_trade(
        liquidity=market.liquidity,
        outcomes=list(market.outcomes.all()),
        outcome_code=outcome_code,
        side=side,
        **quantities,
    )


def markets_reconcile() -> list[Violation]:
    """Every invariant of the ledger and of the markets, each violation reported precisely."""
    violations = ledger_reconcile()
    position_sums = dict(
        Position.objects.values("outcome_id").annotate(total=Sum("shares")).values_list("outcome_id", "total")
    )
    for outcome_id, market_slug, code, outstanding in Outcome.objects.values_list(
        "pk", "market__slug", "code", "shares_outstanding"
    ):
        held = position_sums.get(outcome_id, ZERO)
        if outstanding != held:
            violations.append(
                Violation("q_equals_positions", f"{market_slug}/{code}", f"q is {outstanding}, positions hold {held}")
            )
    unsettled = Market.objects.filter(
        status__in=[Market.Status.OPEN, Market.Status.CLOSED, Market.Status.RESOLVING]
    ).annotate(worst_payout=Max("outcomes__shares_outstanding"))
    for slug, escrow, worst in unsettled.values_list("slug", "escrow__balance", "worst_payout"):
        if worst is not None and escrow < worst:
            violations.append(Violation("escrow_covers_worst_payout", slug, f"escrow {escrow} < worst payout {worst}"))
    return violations
