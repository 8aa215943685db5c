"""Metrics of the ledger's reconciliation (docs/operations.md)."""

from collections.abc import Sequence

from prometheus_client import Counter

from accounts.services import Violation

RECONCILIATION_RUNS = Counter("forecastle_reconciliation_runs", "Reconciliation runs finished.")
RECONCILIATION_VIOLATIONS = Counter(
    "forecastle_reconciliation_violations",
    "Broken invariants found by reconciliation runs, by invariant (any increase needs a person).",
    ["invariant"],
)


def reconciliation_observe(violations: Sequence[Violation]) -> None:
    RECONCILIATION_RUNS.inc()
    for violation in violations:
        RECONCILIATION_VIOLATIONS.labels(invariant=violation.invariant).inc()
