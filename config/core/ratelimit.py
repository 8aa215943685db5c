"""Counting limits on website actions that have no DRF throttle: sign-ups and password-reset requests per
client address. A fixed window in the Django cache (Redis), counted with an atomic increment.

Like the API throttles, a limit is let through when Redis cannot be reached: losing it for a while is
better than refusing every sign-up.
"""

import time
from dataclasses import dataclass

from django.core.cache import cache

from config.core.cache import UNREACHABLE, cache_unreachable

PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Rate:
    count: int
    seconds: int


def rate_parse(rate: str) -> Rate:
    """'5/hour', '10/min', '100/day' (DRF's notation: the period's first letter counts)."""
    count, _, period = rate.partition("/")
    return Rate(count=int(count), seconds=PERIODS[period.strip()[:1].lower()])


def rate_limit_consume(*, scope: str, ident: str, rate: str) -> int | None:
    """Counts one use of `scope` by `ident`. None when it is within the rate; otherwise the seconds until
    the window ends (the use is still counted, so hammering does not help)."""
    limit = rate_parse(rate)
    now = time.time()
    window = int(now // limit.seconds)
    key = f"ratelimit:{scope}:{ident}:{window}"
    try:
        cache.add(key, 0, timeout=limit.seconds + 1)
        used = cache.incr(key)
    except ValueError:  # the window's key expired between the add and the increment: count from scratch
        return None
    except UNREACHABLE:
        cache_unreachable(f"rate limit {scope}")
        return None
    if used <= limit.count:
        return None
    return max(1, int((window + 1) * limit.seconds - now))
