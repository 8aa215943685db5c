"""Metrics of trading and settlement (docs/operations.md lists every metric and the alerts on them).

The services are wrapped at their boundary (`trade_observed`, `settlement_observed`), so the metrics stay out of
their code; what describes the system rather than one call (markets waiting for settlement, the last
reconciliation) is read from PostgreSQL when /metrics is scraped.
"""

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import ParamSpec, TypeVar

from django.db import DatabaseError
from django.db.models import Count, Min
from django.utils import timezone
from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from accounts.errors import DomainError
from config.core.metrics import LATENCY_BUCKETS

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Seconds: a settlement pays 100,000 positions in about 7 s (docs/benchmarks.md).
SETTLEMENT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

TRADES = Counter("forecastle_trades", "Trades executed (idempotent replays excluded), by side.", ["side"])
TRADES_REJECTED = Counter(
    "forecastle_trades_rejected", "Trades refused, by reason (the domain error's code).", ["reason"]
)
TRADE_DURATION = Histogram(
    "forecastle_trade_duration_seconds",
    "Time trade_execute took, by result (executed, replayed, rejected).",
    ["result"],
    buckets=LATENCY_BUCKETS,
)
SETTLEMENT_DURATION = Histogram(
    "forecastle_settlement_duration_seconds",
    "Time a settlement run took, by result (settled, or nothing left to settle).",
    ["result"],
    buckets=SETTLEMENT_BUCKETS,
)
POSITIONS_SETTLED = Counter(
    "forecastle_positions_settled",
    "Traders' positions settled: one payout per trader and settlement, covering all their outcomes.",
)


def trade_observed(service: Callable[P, R]) -> Callable[P, R]:
    """Counts and times every call of the trade service, and each refusal by its reason."""

    @functools.wraps(service)
    def observed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        try:
            result = service(*args, **kwargs)
        except DomainError as error:
            TRADES_REJECTED.labels(reason=error.code).inc()
            TRADE_DURATION.labels(result="rejected").observe(time.perf_counter() - started)
            raise
        replayed = bool(getattr(result, "replayed", False))
        TRADE_DURATION.labels(result="replayed" if replayed else "executed").observe(time.perf_counter() - started)
        if not replayed:
            TRADES.labels(side=str(getattr(getattr(result, "trade", None), "side", "unknown"))).inc()
        return result

    return observed


def settlement_observed(service: Callable[P, R]) -> Callable[P, R]:
    """Times every settlement run and counts the positions it paid."""

    @functools.wraps(service)
    def observed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        result = service(*args, **kwargs)
        SETTLEMENT_DURATION.labels(result="nothing" if result is None else "settled").observe(
            time.perf_counter() - started
        )
        if result is not None:
            POSITIONS_SETTLED.inc(int(getattr(result, "payout_count", 0)))
        return result

    return observed


class SettlementAndReconciliationState:
    """Read at scrape time: the settlement backlog, and what the last reconciliation found."""

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def _families(self) -> tuple[GaugeMetricFamily, ...]:
        return (
            GaugeMetricFamily("forecastle_markets_resolving", "Markets whose current resolution awaits settlement."),
            GaugeMetricFamily(
                "forecastle_settlement_oldest_pending_seconds",
                "Age of the oldest resolution awaiting settlement (0 when none waits).",
            ),
            GaugeMetricFamily(
                "forecastle_reconciliation_last_violations", "Violations the last reconciliation run found."
            ),
            GaugeMetricFamily(
                "forecastle_reconciliation_last_run_timestamp_seconds", "When the last reconciliation run started."
            ),
        )

    def collect(self) -> Iterator[Metric]:
        from markets.models import Market, ReconciliationRun, Resolution

        try:
            backlog = Resolution.objects.filter(
                is_current=True, state=Resolution.State.PENDING, market__status=Market.Status.RESOLVING
            ).aggregate(count=Count("pk"), oldest=Min("created_at"))
            last_run = ReconciliationRun.objects.values("started_at", "violation_count").first()
        except DatabaseError as error:
            logger.warning("could not read the settlement backlog for /metrics: %s", error)
            return
        resolving, oldest, violations, last_run_at = self._families()
        resolving.add_metric([], backlog["count"])
        age = (timezone.now() - backlog["oldest"]).total_seconds() if backlog["oldest"] else 0.0
        oldest.add_metric([], max(age, 0.0))
        yield resolving
        yield oldest
        if last_run is not None:
            violations.add_metric([], last_run["violation_count"])
            last_run_at.add_metric([], last_run["started_at"].timestamp())
            yield violations
            yield last_run_at
