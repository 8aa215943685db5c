"""Markets traded through the real services, resolved and settled through the real services."""

import itertools
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from forecast import services as forecast_services
from markets.models import Market
from markets.services import market_resolve, market_settle, trade_execute
from tests.factories import trade_request

DAY = timedelta(days=1)


@dataclass
class Scenario:
    market: Market
    staff: User
    traders: dict[str, User]
    opens_at: datetime
    closes_at: datetime
    # (username, time, probabilities after) in the order traded.
    forecasts: list[tuple[str, datetime, list[float]]] = field(default_factory=list)

    def resolve(self, *, kind: str = "outcome", outcome: str | None = None, split=None, at: datetime) -> None:
        market_resolve(
            market=self.market,
            user=self.staff,
            kind=kind,
            outcome_code=outcome,
            split=split,
            reason="The source says so.",
            now=at,
        )
        market_settle(market_id=self.market.pk, now=at + timedelta(minutes=1))
        self.market.refresh_from_db()


def reference_scores(scenario: Scenario, payouts: list[float]) -> dict[str, dict[str, float]]:
    """Scores computed independently of forecast.scoring: a plain loop over the elementary segments."""
    start, end = scenario.opens_at, scenario.closes_at
    instants = sorted({start, end, *(at for _, at, _ in scenario.forecasts)})
    total = (end - start).total_seconds()
    n = len(payouts)
    result = {
        name: {"covered": 0.0, "brier": 0.0, "log": 0.0, "baseline": 0.0, "peer": 0.0} for name in scenario.traders
    }
    for left, right in itertools.pairwise(instants):
        held: dict[str, list[float]] = {}
        for name, at, probabilities in scenario.forecasts:
            if at <= left:
                held[name] = probabilities
        dt = (right - left).total_seconds()
        for name, p in held.items():
            brier = sum(r * sum((p[i] - (i == j)) ** 2 for i in range(n)) for j, r in enumerate(payouts))
            log = sum(r * math.log(p[j]) for j, r in enumerate(payouts))
            baseline = sum(r * 100 * math.log(n * p[j]) / math.log(n) for j, r in enumerate(payouts))
            others = [q for other, q in held.items() if other != name]
            peer = 0.0
            if others:
                peer = sum(
                    r * 100 * (math.log(p[j]) - sum(math.log(q[j]) for q in others) / len(others))
                    for j, r in enumerate(payouts)
                )
            row = result[name]
            row["covered"] += dt
            row["brier"] += brier * dt
            row["log"] += log * dt
            row["baseline"] += baseline * dt
            row["peer"] += peer * dt
    for row in result.values():
        covered = row.pop("covered")
        row["coverage"] = covered / total
        row["brier"] = row["brier"] / covered if covered else math.nan
        row["log"] = row["log"] / covered if covered else math.nan
        row["baseline"] /= total
        row["peer"] /= total
    return result


@pytest.fixture
def traded_market(make_user, make_market):
    """A binary market open for 8 days: alice, bob and carol trade at different times; not yet resolved."""

    def build(slug: str = "rutte-nato", *, opens_at: datetime | None = None) -> Scenario:
        opens_at = opens_at or timezone.now() - 20 * DAY
        market = make_market(
            slug=slug,
            question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
            kind=Market.Kind.BINARY,
            liquidity=100,
            closes_at=opens_at + 8 * DAY,
            now=opens_at,
        )
        traders = {name: make_user(f"{name}-{slug}") for name in ("alice", "bob", "carol")}
        scenario = Scenario(
            market=market,
            staff=make_user(f"staff-{slug}", is_staff=True),
            traders=traders,
            opens_at=opens_at,
            closes_at=opens_at + 8 * DAY,
        )
        plan = [
            ("alice", 1, trade_request("YES", "buy", shares="60")),
            ("bob", 3, trade_request("NO", "buy", amount="20")),
            ("alice", 5, trade_request("YES", "sell", shares="15")),
            ("carol", 6, trade_request("YES", "buy", probability="0.7")),
            ("bob", 7, trade_request("NO", "buy", shares="5")),
        ]
        for name, day, order in plan:
            at = opens_at + day * DAY
            result = trade_execute(user=traders[name], market=market, now=at, request=order)
            scenario.forecasts.append((name, at, list(result.probabilities)))
        return scenario

    return build


@pytest.fixture
def scored(traded_market, settings):
    """Two markets resolved (YES, then NO), scored, and the leaderboards rebuilt."""
    settings.FORECASTLE_BRIER_MIN_MARKETS = 1
    first = traded_market("first")
    first.resolve(outcome="YES", at=first.closes_at)
    second = traded_market("second")
    second.resolve(outcome="NO", at=second.closes_at)
    for scenario in (first, second):
        forecast_services.market_score(market_id=scenario.market.pk)
    forecast_services.leaderboards_rebuild()
    return first, second
