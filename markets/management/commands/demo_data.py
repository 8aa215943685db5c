"""`manage.py demo_data`: demo markets, users and six weeks of trading, loaded idempotently.

Everything goes through the services (user_create, market_create, trade_execute, market_close)
with `now` set in the past, so the history obeys every ledger invariant exactly like live trading.
A market that already exists is left alone (its trades too), so a second run changes nothing.
"""

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.errors import DomainError
from accounts.models import User
from accounts.services import user_create, wallet_get
from markets.models import Market, Trade
from markets.services import market_close, market_create, market_quote, markets_reconcile, trade_execute
from markets.trade_request import TradeRequest

DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi")
ADMIN_USERNAME = "admin"
HISTORY_DAYS = 42
CENT = Decimal("0.01")


@dataclass(frozen=True)
class DemoMarket:
    slug: str
    question: str
    category: str
    description: str
    resolution_criteria: str
    # None for a binary market (YES / NO).
    outcomes: tuple[tuple[str, str], ...] | None
    initial_probabilities: tuple[float, ...]
    # Where the crowd's belief drifts to by the end of the history, one value per outcome.
    belief_at_end: tuple[float, ...]
    liquidity: int
    opened_days_ago: float
    # Negative: the market closed that many days ago.
    closes_in_days: float
    trade_count: int


# The markets' texts and shapes: demo_markets.json, beside this file.
DEMO_MARKETS_FILE = Path(__file__).with_name("demo_markets.json")


def demo_markets_load(path: Path = DEMO_MARKETS_FILE) -> tuple[DemoMarket, ...]:
    """The demo markets of the data file; each opens within the demo history."""
    markets = []
    for entry in json.loads(path.read_text(encoding="utf-8")):
        outcomes = entry.pop("outcomes")
        spec = DemoMarket(
            **entry
            | {
                "outcomes": tuple((code, label) for code, label in outcomes) if outcomes is not None else None,
                "initial_probabilities": tuple(entry["initial_probabilities"]),
                "belief_at_end": tuple(entry["belief_at_end"]),
            }
        )
        if not 0 < spec.opened_days_ago <= HISTORY_DAYS:
            raise ValueError(f"{spec.slug} opens outside the {HISTORY_DAYS}-day demo history")
        markets.append(spec)
    return tuple(markets)


DEMO_MARKETS = demo_markets_load()


@dataclass
class Tally:
    executed: int = 0
    refused: dict[str, int] = field(default_factory=dict)

    def refuse(self, error: DomainError) -> None:
        self.refused[error.code] = self.refused.get(error.code, 0) + 1


def _normalise(values: Sequence[float]) -> list[float]:
    total = math.fsum(values)
    return [value / total for value in values]


def _belief_paths(spec: DemoMarket, points: int, rng: random.Random) -> list[list[float]]:
    """The crowd's belief at each trade: an eased drift from the opening prices to `belief_at_end`,
    plus per-outcome Brownian bridges (log scale) so the chart wanders instead of moving in a line."""
    bridges = []
    for _outcome in spec.initial_probabilities:
        walk = [0.0]
        for _ in range(points):
            walk.append(walk[-1] + rng.gauss(0.0, 0.07))
        bridges.append([value - walk[-1] * step / points for step, value in enumerate(walk[1:], start=1)])
    paths = []
    for step in range(points):
        t = (step + 1) / points
        eased = t * t * (3 - 2 * t)
        mixed = [
            (start + (end - start) * eased) * math.exp(bridge[step])
            for start, end, bridge in zip(spec.initial_probabilities, spec.belief_at_end, bridges, strict=True)
        ]
        paths.append(_normalise(mixed))
    return paths


def _decimal(value: float, places: Decimal = CENT) -> Decimal:
    return Decimal(f"{value:.6f}").quantize(places, rounding=ROUND_DOWN)


class Command(BaseCommand):
    help = "Loads demo markets, users and ~6 weeks of trading history. Safe to run again: it changes nothing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--seed", type=int, default=20240626, help="Random seed (the history is deterministic).")

    def handle(self, *args: object, **options: Any) -> None:
        now = timezone.now().replace(microsecond=0)
        rng = random.Random(options["seed"])
        with transaction.atomic():
            admin = self._admin()
            users = [self._user(username) for username in DEMO_USERS]
            tally = Tally()
            created = []
            for spec in DEMO_MARKETS:
                if Market.objects.filter(slug=spec.slug).exists():
                    continue
                created.append(spec.slug)
                self._load_market(spec, users=users, admin=admin, now=now, rng=rng, tally=tally)
            violations = markets_reconcile()
            if violations:
                raise CommandError("Demo data broke ledger invariants: " + "; ".join(map(str, violations)))

        if created:
            refused = ", ".join(f"{count} {code}" for code, count in sorted(tally.refused.items())) or "none"
            self.stdout.write(
                f"Created {len(created)} markets with {tally.executed} trades (refused as live: {refused})."
            )
        else:
            self.stdout.write("Demo data already loaded; nothing changed.")
        web = os.environ.get("WEB_ADDRESS", "127.0.0.1:8000")
        self.stdout.write(
            self.style.SUCCESS(
                f"Admin: http://{web}/admin/  user {ADMIN_USERNAME!r}, password from DEMO_ADMIN_PASSWORD "
                f"({self._admin_password()!r}). Demo traders {', '.join(DEMO_USERS)} use the password "
                f"{self._user_password()!r}."
            )
        )

    @staticmethod
    def _admin_password() -> str:
        return os.environ.get("DEMO_ADMIN_PASSWORD", "forecastle-admin")

    @staticmethod
    def _user_password() -> str:
        return os.environ.get("DEMO_USER_PASSWORD", "forecastle-demo")

    def _admin(self) -> User:
        admin = User.objects.filter(username=ADMIN_USERNAME).first()
        if admin is None:
            return user_create(
                username=ADMIN_USERNAME, password=self._admin_password(), is_staff=True, is_superuser=True
            )
        return admin

    def _user(self, username: str) -> User:
        user = User.objects.filter(username=username).first()
        return user or user_create(username=username, password=self._user_password(), email=f"{username}@example.com")

    def _load_market(
        self,
        spec: DemoMarket,
        *,
        users: list[User],
        admin: User,
        now: datetime,
        rng: random.Random,
        tally: Tally,
    ) -> None:
        opened = now - timedelta(days=spec.opened_days_ago)
        closes = now + timedelta(days=spec.closes_in_days)
        market = market_create(
            slug=spec.slug,
            question=spec.question,
            kind=Market.Kind.MULTIPLE if spec.outcomes else Market.Kind.BINARY,
            outcomes=spec.outcomes,
            initial_probabilities=list(spec.initial_probabilities),
            liquidity=spec.liquidity,
            closes_at=closes,
            description=spec.description,
            resolution_criteria=spec.resolution_criteria,
            category=spec.category,
            created_by=admin,
            now=opened,
        )
        last_trade = min(closes, now) - timedelta(minutes=30)
        window = (last_trade - opened).total_seconds() - 3600
        times = sorted(opened + timedelta(seconds=3600 + rng.uniform(0, window)) for _ in range(spec.trade_count))
        beliefs = _belief_paths(spec, spec.trade_count, rng)
        codes = [code for code, _label in market.outcomes.values_list("code", "label")]
        # Each trader leans their own way on every outcome, fixed for the market's life.
        leanings = {user.pk: [rng.gauss(0.0, 0.15) for _ in codes] for user in users}
        for at, crowd in zip(times, beliefs, strict=True):
            trader = rng.choice(users)
            personal = _normalise(
                [p * math.exp(lean + rng.gauss(0.0, 0.08)) for p, lean in zip(crowd, leanings[trader.pk], strict=True)]
            )
            self._trade(market=market, codes=codes, trader=trader, belief=personal, at=at, rng=rng, tally=tally)
        if spec.closes_in_days < 0:
            market_close(market=market, now=closes)

    def _trade(
        self,
        *,
        market: Market,
        codes: list[str],
        trader: User,
        belief: list[float],
        at: datetime,
        rng: random.Random,
        tally: Tally,
    ) -> None:
        """One trader acts on the gap between their belief and the price, the way people do:
        buying what looks cheap by amount, shares or a target probability, or selling what looks dear."""
        prices = [outcome.probability for outcome in market.outcomes.all()]
        gaps = [b - p for b, p in zip(belief, prices, strict=True)]
        cheap = max(range(len(codes)), key=gaps.__getitem__)
        holdings = dict(market.positions.filter(user=trader, shares__gt=0).values_list("outcome__code", "shares"))
        overpriced = [i for i, code in enumerate(codes) if code in holdings and gaps[i] < -0.01]
        if overpriced and rng.random() < 0.6:
            index, side = min(overpriced, key=gaps.__getitem__), Trade.Side.SELL
        elif gaps[cheap] > 0.01:
            index, side = cheap, Trade.Side.BUY
        else:
            return
        held = holdings.get(codes[index], Decimal(0))
        code, target = codes[index], min(max(belief[index], 0.01), 0.98)
        # Nobody trades past their own belief: the trade that moves the price there is the most they do.
        try:
            full = market_quote(
                market=market, request=TradeRequest(outcome=code, side=side, probability=Decimal(f"{target:.4f}"))
            )
        except DomainError as error:
            tally.refuse(error)
            return
        share = rng.uniform(0.3, 1.0)
        style = rng.random()
        if side == Trade.Side.SELL and full.shares > held:
            # Selling down to their belief would take more than they hold: they sell some of what they have.
            style, full = 1.0, replace(full, shares=held)
        request: dict[str, Decimal | None] = {"shares": None, "amount": None, "probability": None}
        if style < 0.3:
            request["probability"] = Decimal(f"{prices[index] + (target - prices[index]) * share:.4f}")
        elif style < 0.65:
            spend = float(full.amount) * share
            if side == Trade.Side.BUY:
                # Keep some credits for the other markets.
                spend = min(spend, float(wallet_get(user=trader).balance) * 0.4)
            request["amount"] = _decimal(spend)
        else:
            request["shares"] = _decimal(float(full.shares) * share)
        bound: dict[str, Decimal | None] = {"max_cost": None, "min_proceeds": None}
        # Traders who name a quantity in shares usually set a price limit, as the website suggests.
        if request["shares"] is not None and rng.random() < 0.5:
            try:
                quote = market_quote(
                    market=market, request=TradeRequest(outcome=code, side=side, shares=request["shares"])
                )
            except DomainError as error:
                tally.refuse(error)
                return
            if side == Trade.Side.BUY:
                bound["max_cost"] = (quote.amount * Decimal("1.02")).quantize(CENT)
            else:
                bound["min_proceeds"] = (quote.amount * Decimal("0.98")).quantize(CENT, rounding=ROUND_DOWN)
        try:
            trade_request = TradeRequest(
                outcome=code,
                side=side,
                shares=request["shares"],
                amount=request["amount"],
                probability=request["probability"],
                max_cost=bound["max_cost"],
                min_proceeds=bound["min_proceeds"],
            )
            trade_execute(user=trader, market=market, request=trade_request, now=at)
        except DomainError as error:
            tally.refuse(error)
            return
        tally.executed += 1
