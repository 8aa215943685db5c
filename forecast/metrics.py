"""Metrics of scoring (docs/operations.md)."""

import functools
import time
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prometheus_client import Counter, Histogram

from markets.metrics import SETTLEMENT_BUCKETS

P = ParamSpec("P")
R = TypeVar("R")

SCORING_DURATION = Histogram(
    "forecastle_scoring_duration_seconds", "Time scoring one market took.", buckets=SETTLEMENT_BUCKETS
)
SCORES_WRITTEN = Counter("forecastle_scores_written", "Per-trader market scores written.")


def scoring_observed(service: Callable[P, R]) -> Callable[P, R]:
    """Times every scoring run and counts the scores it wrote."""

    @functools.wraps(service)
    def observed(*args: P.args, **kwargs: P.kwargs) -> R:
        started = time.perf_counter()
        result = service(*args, **kwargs)
        SCORING_DURATION.observe(time.perf_counter() - started)
        SCORES_WRITTEN.inc(int(getattr(result, "scored", 0)))
        return result

    return observed
