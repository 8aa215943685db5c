"""Market lifecycle: create, open (the house funds the subsidy), close; and the staff controls on a live market.

Every staff control (close early, move the close, halt and resume, add liquidity, add an outcome, edit the
texts) is one service here, called alike by the staff pages, the admin and the API. Each takes the market lock,
checks the state, makes its change and writes its MarketEvent (who, when, what, why) in one transaction, then
announces the change (markets.services.changes) so cached prices and pages follow. The maths of adding
liquidity and outcomes is in docs/trading.md ("Staff controls on a live market").
"""

import math
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import ZERO, credits_to_pay
from accounts.services import ledger_transfer, system_account
from markets import lmsr
from markets.errors import InvalidInput, MarketStateError
from markets.locks import market_lock, markets_lock
from markets.models import Market, MarketEvent, Outcome, PricePoint
from markets.pricing import lmsr_state
from markets.services.changes import market_changed
from markets.services.orders import market_orders_cancel

OUTCOME_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LIQUIDITY = Decimal("10000000")
# Paths under /markets/ that are pages, not markets.
RESERVED_SLUGS = frozenset({"new"})
BINARY_OUTCOMES = (("YES", "Yes"), ("NO", "No"))
MAX_OUTCOMES = 50
MAX_REASON_LENGTH = 2000
# A float margin on the escrow the maker needs, so rounding always errs towards more cover (markets.pricing).
FLOAT_MARGIN = 1e-12
# Prices must come out of a change of b or of the outcomes as they went in, to this many digits.
PRICE_TOLERANCE = 1e-9


def _positive_decimal(value: object, *, field: str, maximum: Decimal) -> Decimal:
    """A finite, positive number no larger than `maximum`, or InvalidInput naming the field."""
    if isinstance(value, bool) or value is None:
        raise InvalidInput("Enter a number.", field=field)
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise InvalidInput("Enter a number.", field=field) from None
    if not number.is_finite():
        raise InvalidInput("Enter a finite number.", field=field)
    if number <= ZERO:
        raise InvalidInput("Enter a number greater than zero.", field=field)
    if number > maximum:
        raise InvalidInput(f"Enter a number no larger than {maximum:,}.", field=field)
    return number


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
    if slug in RESERVED_SLUGS:
        raise InvalidInput(f"The slug {slug!r} is reserved for a page of the site.", field="slug")
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
        raise InvalidInput(f"A market has at most {MAX_OUTCOMES} outcomes.", field="outcomes")
    codes = [code for code, _label in outcomes]
    if len(set(codes)) != len(codes) or not all(OUTCOME_CODE.match(code) for code in codes):
        raise InvalidInput(
            "Outcome codes are unique, uppercase letters, digits, '-' or '_' (at most 32).", field="outcomes"
        )
    if not all(label.strip() and len(label) <= 120 for _code, label in outcomes):
        raise InvalidInput("Every outcome needs a label of at most 120 characters.", field="outcomes")
    b = _positive_decimal(liquidity, field="liquidity", maximum=MAX_LIQUIDITY).quantize(Decimal("0.0001"))
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
    market = market_lock(market_id=market.pk)
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
    market_changed(market_id=market.pk)
    return market


def _reason(reason: str | None, *, required: bool = True) -> str:
    text = (reason or "").strip()
    if required and not text:
        raise InvalidInput("Give the reason; it is shown on the market page.", field="reason")
    if len(text) > MAX_REASON_LENGTH:
        raise InvalidInput(f"Keep the reason under {MAX_REASON_LENGTH} characters.", field="reason")
    return text


def _event_write(
    *, market: Market, kind: str, actor: User, reason: str, now: datetime, data: dict[str, object] | None = None
) -> MarketEvent:
    return MarketEvent.objects.create(
        market=market, kind=kind, actor=actor, reason=reason, data=data or {}, created_at=now
    )


def market_close(*, market: Market, user: User | None = None, reason: str = "", now: datetime | None = None) -> Market:
    """Stops trading on an open market (halted or not). Staff closing it early give a reason, and the close is
    audited; without a user it is the clock's close (markets_close_due does the same for many at once)."""
    now = now or timezone.now()
    reason = _reason(reason, required=user is not None)
    with transaction.atomic():
        market = market_lock(market_id=market.pk)
        if market.status != Market.Status.OPEN:
            raise MarketStateError(f"Only an open market can be closed; this one is {market.status}.")
        market.status = Market.Status.CLOSED
        market.closed_at = now
        market.halted_at = None
        market.save(update_fields=["status", "closed_at", "halted_at"])
        market_orders_cancel(market_id=market.pk, reason="market closed", now=now)
        if user is not None:
            _event_write(
                market=market,
                kind=MarketEvent.Kind.CLOSED,
                actor=user,
                reason=reason,
                now=now,
                data={"scheduled_close": market.closes_at.isoformat()},
            )
        market_changed(market_id=market.pk)
    return market


def markets_close_due(*, now: datetime | None = None) -> int:
    """Closes every open market whose close time has passed; returns how many it closed."""
    now = now or timezone.now()
    with transaction.atomic():
        due = markets_lock(query=Market.objects.filter(status=Market.Status.OPEN, closes_at__lte=now))
        Market.objects.filter(pk__in=due).update(status=Market.Status.CLOSED, closed_at=now, halted_at=None)
        for market_id in due:
            market_orders_cancel(market_id=market_id, reason="market closed", now=now)
            market_changed(market_id=market_id)
    return len(due)


EDITABLE_TEXT_FIELDS = ("question", "description", "resolution_criteria", "category")


def market_update(
    *, market: Market, user: User, reason: str = "", now: datetime | None = None, **fields: str
) -> Market:
    """Edits a market's text fields (staff). Prices, outcomes and times are not editable here:
    changing them under open positions would change what traders bought.

    Once the market has opened, every edit is public: a MarketEvent of kind `edited` keeps each changed
    field's text before and after (the market's revision history, on its page and at .../revisions/).
    A draft's edits are not recorded: nobody has seen it."""
    now = now or timezone.now()
    unknown = set(fields) - set(EDITABLE_TEXT_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be edited: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    reason = _reason(reason, required=False)
    changes = {name: str(value).strip() for name, value in fields.items()}
    if "question" in changes and not 0 < len(changes["question"]) <= 300:
        raise InvalidInput("Ask a question of 1 to 300 characters.", field="question")
    if "category" in changes and len(changes["category"]) > 50:
        raise InvalidInput("A category has at most 50 characters.", field="category")
    with transaction.atomic():
        locked = market_lock(market_id=market.pk)
        changed = {
            name: {"before": getattr(locked, name), "after": value}
            for name, value in changes.items()
            if getattr(locked, name) != value
        }
        if changed:
            Market.objects.filter(pk=locked.pk).update(**{name: change["after"] for name, change in changed.items()})
            if locked.status != Market.Status.DRAFT:
                _event_write(
                    market=locked,
                    kind=MarketEvent.Kind.EDITED,
                    actor=user,
                    reason=reason,
                    now=now,
                    data={"changes": changed},
                )
            market_changed(market_id=locked.pk)
    for name, change in changed.items():
        setattr(market, name, change["after"])
    return market


def market_reschedule(
    *, market: Market, closes_at: datetime, changed_by: User, reason: str = "", now: datetime | None = None
) -> Market:
    """Moves the close time of a draft or open market (staff), under the market lock, and audits it.

    The new time must be in the future: a market whose time has passed is closed by the beat task and is
    not reopened by moving its time. An opened market's move is a public MarketEvent (who, when, from what
    to what, why)."""
    now = now or timezone.now()
    reason = _reason(reason, required=False)
    with transaction.atomic():
        locked = market_lock(market_id=market.pk)
        if locked.status not in (Market.Status.DRAFT, Market.Status.OPEN):
            raise MarketStateError(f"Only a draft or open market's close time can change; this one is {locked.status}.")
        if closes_at <= now:
            raise InvalidInput("The close time must be in the future.", field="closes_at")
        previous = locked.closes_at
        if closes_at == previous:
            return locked
        locked.closes_at = closes_at
        locked.save(update_fields=["closes_at"])
        if locked.status != Market.Status.DRAFT:
            _event_write(
                market=locked,
                kind=MarketEvent.Kind.CLOSE_MOVED,
                actor=changed_by,
                reason=reason,
                now=now,
                data={"from": previous.isoformat(), "to": closes_at.isoformat()},
            )
        market_changed(market_id=locked.pk)
    market.closes_at = closes_at
    return locked


def market_halt(*, market: Market, user: User, reason: str, now: datetime | None = None) -> Market:
    """Halts trading on an open market until staff resume it; traders see the reason with every refusal."""
    now = now or timezone.now()
    reason = _reason(reason)
    with transaction.atomic():
        locked = market_lock(market_id=market.pk)
        if locked.status != Market.Status.OPEN:
            raise MarketStateError(f"Only an open market can be halted; this one is {locked.status}.")
        if locked.halted_at is not None:
            raise MarketStateError("Trading on this market is already halted.")
        locked.halted_at = now
        locked.halt_reason = reason
        locked.save(update_fields=["halted_at", "halt_reason"])
        market_orders_cancel(market_id=locked.pk, reason="market halted", now=now)
        _event_write(market=locked, kind=MarketEvent.Kind.HALTED, actor=user, reason=reason, now=now)
        market_changed(market_id=locked.pk)
    return locked


def market_resume(*, market: Market, user: User, reason: str = "", now: datetime | None = None) -> Market:
    """Resumes trading on a halted market (it still closes at its close time)."""
    now = now or timezone.now()
    reason = _reason(reason, required=False)
    with transaction.atomic():
        locked = market_lock(market_id=market.pk)
        if locked.halted_at is None or locked.status != Market.Status.OPEN:
            raise MarketStateError("Only a halted open market can resume trading.")
        halted_at = locked.halted_at
        locked.halted_at = None
        locked.halt_reason = ""
        locked.save(update_fields=["halted_at", "halt_reason"])
        _event_write(
            market=locked,
            kind=MarketEvent.Kind.RESUMED,
            actor=user,
            reason=reason,
            now=now,
            data={"halted_at": halted_at.isoformat()},
        )
        market_changed(market_id=locked.pk)
    return locked


def escrow_required(*, liquidity: float, outcomes: Sequence[Outcome]) -> Decimal:
    """What the escrow must hold so the maker can pay every share whatever happens from here:
    max_i (C(q) - b*ln p0_i), which is max_i (s_i + b*ln(1/p_i)) (docs/trading.md). Rounded up, with a margin."""
    state = lmsr_state(liquidity, outcomes)
    total = lmsr.cost(state, liquidity)
    worst = max(total - liquidity * math.log(outcome.initial_probability) for outcome in outcomes)
    return credits_to_pay(worst + abs(worst) * FLOAT_MARGIN)


def _escrow_top_up(*, market: Market, required: Decimal, reference: str, memo: str) -> Decimal:
    """Moves from the house into the escrow what it lacks of `required`; returns the amount (zero if none)."""
    balance = Account.objects.values_list("balance", flat=True).get(pk=market.escrow_id)
    top_up = max(required - balance, ZERO)
    if top_up > ZERO:
        ledger_transfer(
            source=system_account(kind=Account.Kind.HOUSE),
            destination=market.escrow,
            amount=top_up,
            kind=LedgerTransaction.Kind.SUBSIDY,
            memo=memo,
            reference=reference,
        )
        Market.objects.filter(pk=market.pk).update(subsidy=market.subsidy + top_up)
        market.subsidy += top_up
    return top_up


def _open_for_control(market_id: int, action: str) -> tuple[Market, list[Outcome]]:
    market = market_lock(market_id=market_id, query=Market.objects.select_related("escrow"))
    if market.status != Market.Status.OPEN:
        raise MarketStateError(f"Only an open market can {action}; this one is {market.status}.")
    return market, list(Outcome.objects.filter(market=market).order_by("index"))


def _check_prices(before: Sequence[float], after: Sequence[float], *, field: str) -> None:
    """Guards the promise that prices move as documented: a change that cannot keep it is refused."""
    if any(abs(a - b) > PRICE_TOLERANCE for a, b in zip(before, after, strict=True)):
        raise InvalidInput("The market's prices cannot be kept exactly with this change.", field=field)


def market_liquidity_add(
    *, market: Market, user: User, liquidity: object, reason: str, now: datetime | None = None
) -> MarketEvent:
    """Raises b to `liquidity` with a house subsidy, keeping every price and every position as they are.

    Traders' shares s_i cannot change, so the maker's offsets do: each outcome's p0 becomes
    p_i * exp(-s_i / b') (normalised), which keeps q_i / b' = ln p_i + const. The house then pays into the
    escrow what the new worst case needs beyond what it holds (escrow_required; docs/trading.md)."""
    now = now or timezone.now()
    reason = _reason(reason)
    new_b = _positive_decimal(liquidity, field="liquidity", maximum=MAX_LIQUIDITY).quantize(Decimal("0.0001"))
    with transaction.atomic():
        locked, outcomes = _open_for_control(market.pk, "take more liquidity")
        old_b = locked.liquidity
        if new_b <= old_b:
            raise InvalidInput(f"Give a liquidity above the current {old_b}.", field="liquidity")
        b, b_new = float(old_b), float(new_b)
        prices = lmsr.prices(lmsr_state(b, outcomes), b)
        # ln p0'_i = ln p_i - s_i / b', normalised with log-sum-exp (no exp of a large number).
        logs = [math.log(p) - float(o.shares_outstanding) / b_new for p, o in zip(prices, outcomes, strict=True)]
        top = max(logs)
        norm = top + math.log(math.fsum(math.exp(value - top) for value in logs))
        offsets = [math.exp(value - norm) for value in logs]
        if not all(0.0 < p0 < 1.0 for p0 in offsets):
            raise InvalidInput("This liquidity would push an outcome's price out of range.", field="liquidity")
        for outcome, p0 in zip(outcomes, offsets, strict=True):
            outcome.initial_probability = p0
        after = lmsr.prices(lmsr_state(b_new, outcomes), b_new)
        _check_prices(prices, after, field="liquidity")
        for outcome, price in zip(outcomes, after, strict=True):
            outcome.probability = price
        Outcome.objects.bulk_update(outcomes, ["initial_probability", "probability"])
        locked.liquidity = new_b
        locked.save(update_fields=["liquidity"])
        event = _event_write(market=locked, kind=MarketEvent.Kind.LIQUIDITY_ADDED, actor=user, reason=reason, now=now)
        subsidy = _escrow_top_up(
            market=locked,
            required=escrow_required(liquidity=b_new, outcomes=outcomes),
            reference=f"liquidity:{event.pk}",
            memo=f"Liquidity of {locked.slug} raised from {old_b} to {new_b}",
        )
        event.data = {"liquidity_from": str(old_b), "liquidity_to": str(new_b), "subsidy": str(subsidy)}
        event.save(update_fields=["data"])
        market_changed(market_id=locked.pk)
    # The caller's row prices trades with its b: it must not keep the old one.
    market.liquidity, market.subsidy = locked.liquidity, locked.subsidy
    return event


def market_outcome_add(
    *,
    market: Market,
    user: User,
    code: str,
    label: str,
    probability: object,
    reason: str,
    now: datetime | None = None,
) -> Outcome:
    """Adds an outcome to an open multiple-choice market at `probability`; every other price scales by
    (1 - probability), so each position's value scales the same way and nobody's shares change.

    The new outcome starts with no shares: its p0 is beta = p A / (1 - p + p A) with A = exp(C(q)/b), and
    every old p0 is multiplied by (1 - beta); the house pays into the escrow what the new worst case
    needs (docs/trading.md)."""
    now = now or timezone.now()
    reason = _reason(reason)
    code = (code or "").strip()
    label = (label or "").strip()
    if not OUTCOME_CODE.match(code):
        raise InvalidInput("Use uppercase letters, digits, '-' or '_' (at most 32).", field="code")
    if not label or len(label) > 120:
        raise InvalidInput("Give a label of 1 to 120 characters.", field="label")
    if isinstance(probability, float):
        probability = repr(probability)
    chance = float(_positive_decimal(probability, field="probability", maximum=Decimal("0.5")))
    if chance < 0.001:
        raise InvalidInput("Start the new outcome between 0.001 and 0.5.", field="probability")
    with transaction.atomic():
        locked, outcomes = _open_for_control(market.pk, "take a new outcome")
        if locked.kind != Market.Kind.MULTIPLE:
            raise MarketStateError("Only a multiple-choice market can take a new outcome.")
        if len(outcomes) >= MAX_OUTCOMES:
            raise InvalidInput(f"A market has at most {MAX_OUTCOMES} outcomes.", field="code")
        if any(outcome.code == code for outcome in outcomes):
            raise InvalidInput("This market already has an outcome with that code.", field="code")
        b = float(locked.liquidity)
        before = lmsr.prices(lmsr_state(b, outcomes), b)
        log_a = lmsr.cost(lmsr_state(b, outcomes), b) / b
        # ln(1 - p + p A) by log-add-exp, then ln beta and ln(1 - beta).
        high, low = sorted((math.log1p(-chance), math.log(chance) + log_a), reverse=True)
        log_denominator = high + math.log1p(math.exp(low - high))
        beta = math.exp(math.log(chance) + log_a - log_denominator)
        keep = math.exp(math.log1p(-chance) - log_denominator)
        for outcome in outcomes:
            outcome.initial_probability *= keep
        added = Outcome(
            market=locked,
            code=code,
            label=label,
            index=len(outcomes),
            initial_probability=beta,
            probability=chance,
        )
        if not all(0.0 < o.initial_probability < 1.0 for o in [*outcomes, added]):
            raise InvalidInput("This market's prices leave no room for a new outcome.", field="probability")
        everything = [*outcomes, added]
        after = lmsr.prices(lmsr_state(b, everything), b)
        _check_prices([p * (1 - chance) for p in before] + [chance], after, field="probability")
        for outcome, price in zip(everything, after, strict=True):
            outcome.probability = price
        Outcome.objects.bulk_update(outcomes, ["initial_probability", "probability"])
        added.save()
        PricePoint.objects.create(market=locked, probabilities=after, created_at=now)
        event = _event_write(market=locked, kind=MarketEvent.Kind.OUTCOME_ADDED, actor=user, reason=reason, now=now)
        subsidy = _escrow_top_up(
            market=locked,
            required=escrow_required(liquidity=b, outcomes=everything),
            reference=f"outcome:{event.pk}",
            memo=f"New outcome {code} in {locked.slug}",
        )
        event.data = {"code": code, "label": label, "probability": chance, "subsidy": str(subsidy)}
        event.save(update_fields=["data"])
        market_changed(market_id=locked.pk)
    market.subsidy = locked.subsidy
    return added
