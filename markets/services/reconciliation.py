"""Reconciliation: every invariant of docs/ledger.md, checked with set-based queries."""

import logging
from datetime import datetime

from django.db.models import Case, CharField, Count, DecimalField, Exists, F, Max, OuterRef, Q, Sum, Value, When
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from accounts.metrics import reconciliation_observe
from accounts.models import Account, LedgerEntry, LedgerTransaction
from accounts.money import ZERO
from accounts.services import Violation, ledger_reconcile, reserved_key
from markets.models import (
    Challenge,
    LimitOrder,
    Market,
    Outcome,
    Payout,
    Position,
    ReconciliationRun,
    Resolution,
    StandingForecast,
    Trade,
)

logger = logging.getLogger(__name__)


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
    traders = dict(
        Position.objects.values("market_id")
        .annotate(count=Count("user_id", distinct=True))
        .values_list("market_id", "count")
    )
    for market_id, slug, trader_count in Market.objects.values_list("pk", "slug", "trader_count"):
        if trader_count != traders.get(market_id, 0):
            violations.append(
                Violation(
                    "trader_count_equals_positions",
                    slug,
                    f"trader count is {trader_count}, {traders.get(market_id, 0)} users hold positions",
                )
            )
    unsettled = Market.objects.filter(
        status__in=[Market.Status.OPEN, Market.Status.CLOSED, Market.Status.RESOLVING]
    ).annotate(worst_payout=Max("outcomes__shares_outstanding"))
    for slug, escrow, worst in unsettled.values_list("slug", "escrow__balance", "worst_payout"):
        if worst is not None and escrow < worst:
            violations.append(Violation("escrow_covers_worst_payout", slug, f"escrow {escrow} < worst payout {worst}"))
    violations.extend(_settlement_violations())
    violations.extend(_bond_violations())
    violations.extend(_void_violations())
    violations.extend(_order_violations())
    violations.extend(_order_trade_violations())
    violations.extend(_standing_violations())
    return violations


def _standing_violations() -> list[Violation]:
    """Standing forecasts (markets.services.standing): each one's `spent` is what its orders' fills paid less what
    they received, never above its budget; an active one holds at most one open order per side, on its own user,
    outcome and limits, its open buy reserving no more than its budget has left; an ended one holds none."""
    violations = []
    signed = Case(
        When(orders__side=Trade.Side.BUY, then=F("orders__filled_amount")),
        default=-F("orders__filled_amount"),
        output_field=DecimalField(max_digits=20, decimal_places=6),
    )
    forecasts = StandingForecast.objects.annotate(filled=Sum(signed)).values_list("pk", "budget", "spent", "filled")
    for forecast_id, budget, spent, filled in forecasts:
        subject = f"standing forecast {forecast_id}"
        if spent > budget:
            violations.append(Violation("standing_spent_within_budget", subject, f"spent {spent} of {budget}"))
        if spent != (filled or ZERO):
            violations.append(Violation("standing_spent_equals_fills", subject, f"spent {spent}, fills {filled}"))
    open_orders = LimitOrder.objects.filter(status=LimitOrder.Status.OPEN, standing_forecast__isnull=False).values_list(
        "pk",
        "side",
        "user_id",
        "outcome_id",
        "limit_probability",
        "reserved_credits",
        "standing_forecast_id",
        "standing_forecast__user_id",
        "standing_forecast__outcome_id",
        "standing_forecast__belief",
        "standing_forecast__band",
        "standing_forecast__budget",
        "standing_forecast__spent",
        "standing_forecast__status",
    )
    sides: set[tuple[int, str]] = set()
    for (
        order_id,
        side,
        user_id,
        outcome_id,
        limit,
        reserved_credits,
        forecast_id,
        owner_id,
        forecast_outcome_id,
        belief,
        band,
        budget,
        spent,
        status,
    ) in open_orders:
        subject = f"standing forecast {forecast_id} order {order_id}"
        expected_limit = belief - band if side == Trade.Side.BUY else belief + band
        problems = []
        if status != StandingForecast.Status.ACTIVE:
            problems.append(f"open under a {status} standing forecast")
        if (forecast_id, side) in sides:
            problems.append(f"a second open {side} order")
        if (user_id, outcome_id, limit) != (owner_id, forecast_outcome_id, expected_limit):
            problems.append(f"user {user_id}, outcome {outcome_id}, limit {limit}: not the standing forecast's")
        if reserved_credits > budget - spent:
            problems.append(f"reserves {reserved_credits} with {budget - spent} of the budget left")
        sides.add((forecast_id, side))
        violations.extend(Violation("standing_orders_consistent", subject, problem) for problem in problems)
    return violations


def _order_violations() -> list[Violation]:
    """Limit orders' reserves (markets.services.orders): each user's reserved account holds exactly the credits
    of their open buy orders, and each position's reserved shares are exactly those of its owner's open sell
    orders in that outcome, never more than the position holds."""
    violations = []
    open_orders = LimitOrder.objects.filter(status=LimitOrder.Status.OPEN)
    reserved_credits = {
        reserved_key(user_id): total
        for user_id, total in open_orders.filter(side=Trade.Side.BUY)
        .values("user_id")
        .annotate(total=Sum("reserved_credits"))
        .values_list("user_id", "total")
    }
    balances = dict(Account.objects.filter(kind=Account.Kind.RESERVED).values_list("key", "balance"))
    for key in sorted(set(balances) | set(reserved_credits)):
        balance, expected = balances.get(key, ZERO), reserved_credits.get(key, ZERO)
        if balance != expected:
            violations.append(
                Violation("reserved_equals_open_orders", key, f"reserved {balance}, open buy orders {expected}")
            )
    reserved_shares = {
        (user_id, outcome_id): total
        for user_id, outcome_id, total in open_orders.filter(side=Trade.Side.SELL)
        .values("user_id", "outcome_id")
        .annotate(total=Sum("reserved_shares"))
        .values_list("user_id", "outcome_id", "total")
    }
    positions = {
        (user_id, outcome_id): (reserved, shares)
        for user_id, outcome_id, reserved, shares in Position.objects.filter(reserved_shares__gt=0).values_list(
            "user_id", "outcome_id", "reserved_shares", "shares"
        )
    }
    for held_key in sorted(set(positions) | set(reserved_shares)):
        reserved, shares = positions.get(held_key, (ZERO, ZERO))
        expected = reserved_shares.get(held_key, ZERO)
        if reserved != expected or reserved > shares:
            violations.append(
                Violation(
                    "reserved_shares_equal_open_orders",
                    f"user {held_key[0]} outcome {held_key[1]}",
                    f"reserved {reserved} of {shares} held, open sell orders {expected}",
                )
            )
    return violations


def _order_trade_violations() -> list[Violation]:
    """The trades limit orders executed (`Trade.order`: fills, and the part that traded at placement): each is its
    order's owner's, on the order's market, outcome and side; a fill names its order; and each order's filled
    shares and amount are exactly what its trades (voided ones too: the order keeps its history) add up to."""
    violations = []
    with_orders = Trade.objects.filter(order__isnull=False)
    mismatched = with_orders.filter(
        ~Q(user_id=F("order__user_id"))
        | ~Q(market_id=F("order__market_id"))
        | ~Q(outcome_id=F("order__outcome_id"))
        | ~Q(side=F("order__side"))
    ).values_list(
        "pk",
        "order_id",
        "user_id",
        "market_id",
        "outcome_id",
        "side",
        "order__user_id",
        "order__market_id",
        "order__outcome_id",
        "order__side",
    )
    for trade_id, order_id, *found, user_id, market_id, outcome_id, side in mismatched:
        violations.append(
            Violation(
                "trade_matches_its_order",
                f"trade {trade_id}",
                f"user {found[0]}, market {found[1]}, outcome {found[2]}, {found[3]}; order {order_id} is user "
                f"{user_id}'s {side} on market {market_id}, outcome {outcome_id}",
            )
        )
    violations.extend(
        Violation("fill_names_its_order", f"trade {trade_id}", "a fill with no order")
        for trade_id in Trade.objects.filter(fill=True, order__isnull=True).values_list("pk", flat=True)
    )
    traded = {
        order_id: (shares, amount)
        for order_id, shares, amount in with_orders.values("order_id")
        .annotate(shares=Sum("shares"), amount=Sum("amount"))
        .values_list("order_id", "shares", "amount")
    }
    filled = {
        order_id: (shares, amount)
        for order_id, shares, amount in LimitOrder.objects.filter(
            Q(filled_shares__gt=0) | Q(filled_amount__gt=0)
        ).values_list("pk", "filled_shares", "filled_amount")
    }
    for order_id in sorted(set(filled) | set(traded)):
        shares, amount = filled.get(order_id, (ZERO, ZERO))
        expected = traded.get(order_id, (ZERO, ZERO))
        if (shares, amount) != expected:
            violations.append(
                Violation(
                    "order_filled_equals_trades",
                    f"order {order_id}",
                    f"filled {shares} shares for {amount}, its trades {expected[0]} for {expected[1]}",
                )
            )
    return violations


def _void_violations() -> list[Violation]:
    """Each resolution's voided trades were paid back once, exactly: the escrow's entry in `void:<resolution>`
    is what those trades put into it net of what they took out (markets.services.voiding)."""
    signed = Case(
        When(side=Trade.Side.BUY, then=F("amount")),
        default=-F("amount"),
        output_field=DecimalField(max_digits=20, decimal_places=6),
    )
    expected = dict(
        Trade.objects.filter(voided_by__isnull=False)
        .values("voided_by_id")
        .annotate(net=Sum(signed))
        .values_list("voided_by_id", "net")
    )
    posted = dict(
        LedgerEntry.objects.filter(
            transaction__kind=LedgerTransaction.Kind.VOID, account__kind=Account.Kind.ESCROW
        ).values_list("transaction__reference", "amount")
    )
    violations = []
    for resolution_id, net in expected.items():
        escrow_paid = -posted.get(f"void:{resolution_id}", ZERO)
        if escrow_paid != net:
            violations.append(
                Violation(
                    "void_paid_once",
                    f"resolution {resolution_id}",
                    f"voided trades net {net}, escrow paid {escrow_paid}",
                )
            )
    return violations


def _bond_violations() -> list[Violation]:
    """The held account holds exactly the bonds of the challenges still awaiting a decision: every bond
    posted and not yet returned or kept (each way out is a ledger transaction the challenge records)."""
    held = Account.objects.filter(kind=Account.Kind.HELD).aggregate(total=Sum("balance"))["total"] or ZERO
    open_bonds = Challenge.objects.filter(state=Challenge.State.OPEN).aggregate(total=Sum("bond"))["total"] or ZERO
    if held != open_bonds:
        return [Violation("held_equals_open_bonds", "held", f"held {held}, open challenges' bonds {open_bonds}")]
    return []


def _settlement_violations() -> list[Violation]:
    """Settlement invariants: a settled market's escrow is empty, its status matches its current
    resolution, and every payout was paid exactly once (entries of its settlement transaction)."""
    violations: list[Violation] = []
    settled = Market.objects.filter(status__in=[Market.Status.RESOLVED, Market.Status.ANNULLED])
    for slug, escrow in settled.exclude(escrow__balance=ZERO).values_list("slug", "escrow__balance"):
        violations.append(Violation("settled_escrow_empty", slug, f"escrow still holds {escrow}"))

    current_counts = settled.annotate(
        current=Count("resolutions", filter=Q(resolutions__is_current=True, resolutions__state="settled"))
    )
    for slug in current_counts.exclude(current=1).values_list("slug", flat=True):
        violations.append(Violation("settled_market_has_settled_resolution", slug, "no settled current resolution"))
    mismatched = Resolution.objects.filter(is_current=True, market__in=settled).exclude(
        Q(market__status=Market.Status.ANNULLED, kind=Resolution.Kind.ANNULLED)
        | (Q(market__status=Market.Status.RESOLVED) & ~Q(kind=Resolution.Kind.ANNULLED))
    )
    for slug, status in mismatched.values_list("market__slug", "market__status"):
        violations.append(Violation("status_matches_resolution", slug, f"market is {status}"))

    # Each settled (or later reversed) resolution: its payouts sum to what its ledger transaction paid.
    paid_by_ledger = dict(
        LedgerEntry.objects.filter(
            transaction__kind__in=[LedgerTransaction.Kind.PAYOUT, LedgerTransaction.Kind.REFUND],
            transaction__reference__startswith="settlement:",
            amount__gt=0,
        )
        .values("transaction__reference")
        .annotate(total=Sum("amount"))
        .values_list("transaction__reference", "total")
    )
    payout_sums = (
        Payout.objects.values("resolution_id").annotate(total=Sum("amount")).values_list("resolution_id", "total")
    )
    recorded = dict(
        Resolution.objects.filter(state__in=[Resolution.State.SETTLED, Resolution.State.REVERSED]).values_list(
            "pk", "paid_total"
        )
    )
    for resolution_id, total in payout_sums:
        ledger_total = paid_by_ledger.get(f"settlement:{resolution_id}", ZERO)
        if total != ledger_total or recorded.get(resolution_id, ZERO) != total:
            violations.append(
                Violation(
                    "payout_paid_once",
                    f"resolution {resolution_id}",
                    f"payout rows sum to {total}, ledger paid {ledger_total}, recorded {recorded.get(resolution_id)}",
                )
            )
    unpaid = Resolution.objects.filter(state__in=[Resolution.State.PENDING, Resolution.State.SUPERSEDED]).filter(
        payout_rows__isnull=False
    )
    for resolution_id in unpaid.values_list("pk", flat=True).distinct():
        violations.append(Violation("payout_paid_once", f"resolution {resolution_id}", "payouts of an unsettled one"))
    reversal_posted = LedgerTransaction.objects.filter(
        kind=LedgerTransaction.Kind.REVERSAL,
        reference=Concat(Value("reversal:"), Cast(OuterRef("pk"), CharField())),
    )
    reversed_without_entries = Resolution.objects.filter(state=Resolution.State.REVERSED).exclude(
        Q(paid_total=ZERO, released_total=ZERO) | Exists(reversal_posted)
    )
    for resolution_id in reversed_without_entries.values_list("pk", flat=True):
        violations.append(Violation("reversal_posted", f"resolution {resolution_id}", "reversed with no reversal"))
    return violations


def reconciliation_run(*, now: datetime | None = None) -> ReconciliationRun:
    """Runs every check, logs each violation loudly and keeps the run for staff (the admin lists them)."""
    started_at = now or timezone.now()
    violations = markets_reconcile()
    reconciliation_observe(violations)
    for violation in violations:
        logger.error("LEDGER INVARIANT VIOLATED: %s", violation)
    return ReconciliationRun.objects.create(
        started_at=started_at,
        finished_at=timezone.now(),
        violation_count=len(violations),
        violations=[str(violation) for violation in violations],
    )
