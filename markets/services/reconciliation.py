"""Reconciliation: every invariant of DESIGN.md, checked with set-based queries."""

from django.db.models import Max, Sum

from accounts.money import ZERO
from accounts.services import Violation, ledger_reconcile
from markets.models import Market, Outcome, Position


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
