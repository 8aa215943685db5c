"""Market lifecycle: create, open (the house funds the subsidy), close."""

import math
import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import ZERO, credits_to_pay
from accounts.services import ledger_transfer, system_account
from markets import lmsr
from markets.errors import InvalidInput, MarketStateError
from markets.locks import market_lock, markets_lock
from markets.models import Market, Outcome, PricePoint
from markets.services.changes import market_changed

OUTCOME_CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
SLUG = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")
MAX_LIQUIDITY = Decimal("10000000")
# Paths under /markets/ that are pages, not markets.
RESERVED_SLUGS = frozenset({"new"})
BINARY_OUTCOMES = (("YES", "Yes"), ("NO", "No"))


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
        raise InvalidInput("A market has at most 50 outcomes.", field="outcomes")
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
    return market


def market_close(*, market: Market, now: datetime | None = None) -> Market:
    """Stops trading on an open market (staff, or the close time passing)."""
    now = now or timezone.now()
    with transaction.atomic():
        market = market_lock(market_id=market.pk)
        if market.status != Market.Status.OPEN:
            raise MarketStateError(f"Only an open market can be closed; this one is {market.status}.")
        market.status = Market.Status.CLOSED
        market.closed_at = now
        market.save(update_fields=["status", "closed_at"])
        market_changed(market_id=market.pk)
    return market


def markets_close_due(*, now: datetime | None = None) -> int:
    """Closes every open market whose close time has passed; returns how many it closed."""
    now = now or timezone.now()
    with transaction.atomic():
        due = markets_lock(query=Market.objects.filter(status=Market.Status.OPEN, closes_at__lte=now))
        Market.objects.filter(pk__in=due).update(status=Market.Status.CLOSED, closed_at=now)
        for market_id in due:
            market_changed(market_id=market_id)
    return len(due)


EDITABLE_TEXT_FIELDS = ("question", "description", "resolution_criteria", "category")


def market_update(*, market: Market, **fields: str) -> Market:
    """Edits a market's text fields (staff). Prices, outcomes and times are not editable here:
    changing them under open positions would change what traders bought."""
    unknown = set(fields) - set(EDITABLE_TEXT_FIELDS)
    if unknown:
        raise InvalidInput(f"These fields cannot be edited: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    changes = {name: str(value).strip() for name, value in fields.items()}
    if "question" in changes and not 0 < len(changes["question"]) <= 300:
        raise InvalidInput("Ask a question of 1 to 300 characters.", field="question")
    if "category" in changes and len(changes["category"]) > 50:
        raise InvalidInput("A category has at most 50 characters.", field="category")
    if changes:
        Market.objects.filter(pk=market.pk).update(**changes)
        for name, value in changes.items():
            setattr(market, name, value)
        market_changed(market_id=market.pk)
    return market


def market_reschedule(*, market: Market, closes_at: datetime, changed_by: User, now: datetime | None = None) -> Market:
    """Moves the close time of a draft or open market (staff), under the market lock, and audits it.

    The new time must be in the future: a market whose time has passed is closed by the beat task and is
    not reopened by moving its time. The audit row is Django's admin log entry for the market (who, when,
    from what to what), which the admin shows in the market's history."""
    now = now or timezone.now()
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
        LogEntry.objects.log_actions(
            user_id=changed_by.pk,
            queryset=[locked],
            action_flag=CHANGE,
            change_message=f"Close time moved from {previous.isoformat()} to {closes_at.isoformat()}.",
            single_object=True,
        )
        market_changed(market_id=locked.pk)
    market.closes_at = closes_at
    return locked
