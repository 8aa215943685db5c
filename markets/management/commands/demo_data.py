"""`manage.py demo_data`: demo markets with real histories, demo users and their trading, loaded idempotently.

The markets and their stories live in demo_markets.json beside this file: each has its open and close dates,
a path of the crowd's belief through the public news of its time, and, for a question already answered, its
resolution with a source. Everything goes through the services (user_create, market_create, trade_execute,
market_close, market_resolve, market_settle) with `now` set to the moment of each event, all markets' events
in one timeline, so payouts of early markets fund later trades and the history obeys every ledger invariant
exactly like live trading. Scoring follows (`manage.py score_markets`, which `make run` runs next).
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
from itertools import pairwise
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from accounts.errors import DomainError
from accounts.models import User
from accounts.services import user_create, wallet_get
from markets.models import Market, Trade
from markets.services import (
    market_close,
    market_create,
    market_quote,
    market_resolve,
    market_settle,
    markets_reconcile,
    trade_execute,
)
from markets.trade_request import TradeRequest

DEMO_USERS = ("alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy")
ADMIN_USERNAME = "admin"
CENT = Decimal("0.01")
# Trades bunch up after news: this many follow each point of a market's path, within NEWS_REACTION.
TRADES_AFTER_NEWS = 2
NEWS_REACTION = timedelta(days=2)


@dataclass(frozen=True)
class BeliefPoint:
    at: datetime
    # The crowd's belief from this moment on, one probability per outcome.
    belief: tuple[float, ...]
    news: str


@dataclass(frozen=True)
class DemoResolution:
    at: datetime
    kind: str
    outcome: str | None
    reason: str
    source: str


@dataclass(frozen=True)
class DemoMarket:
    slug: str
    question: str
    category: str
    description: str
    resolution_criteria: str
    # None for a binary market (YES / NO).
    outcomes: tuple[tuple[str, str], ...] | None
    liquidity: int
    opens_at: datetime
    closes_at: datetime
    trade_count: int
    # The first point is the opening price.
    path: tuple[BeliefPoint, ...]
    resolution: DemoResolution | None

    @property
    def initial_probabilities(self) -> tuple[float, ...]:
        return self.path[0].belief

    @property
    def trading_ends(self) -> datetime:
        """When trading stops: the close, or the resolution if it came first."""
        return min(self.closes_at, self.resolution.at) if self.resolution else self.closes_at


# The markets' texts, dates, stories and resolutions: demo_markets.json, beside this file.
DEMO_MARKETS_FILE = Path(__file__).with_name("demo_markets.json")


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment


def _spec(entry: dict[str, Any]) -> DemoMarket:
    outcomes = entry["outcomes"]
    count = len(outcomes) if outcomes is not None else 2
    path = []
    for point in entry["path"]:
        belief = tuple(float(p) for p in point["belief"])
        if len(belief) != count or abs(math.fsum(belief) - 1) > 1e-9 or min(belief) <= 0:
            raise ValueError(f"{entry['slug']}: each belief has {count} positive probabilities summing to 1")
        path.append(BeliefPoint(at=_moment(point["at"]), belief=belief, news=point["news"]))
    resolution = None
    if entry["resolution"] is not None:
        data = entry["resolution"]
        if not data["source"].startswith("https://"):
            raise ValueError(f"{entry['slug']}: a resolution cites its source as an https:// address")
        resolution = DemoResolution(
            at=_moment(data["at"]),
            kind=data["kind"],
            outcome=data.get("outcome"),
            reason=data["reason"],
            source=data["source"],
        )
    spec = DemoMarket(
        slug=entry["slug"],
        question=entry["question"],
        category=entry["category"],
        description=entry["description"],
        resolution_criteria=entry["resolution_criteria"],
        outcomes=tuple((code, label) for code, label in outcomes) if outcomes is not None else None,
        liquidity=entry["liquidity"],
        opens_at=_moment(entry["opens_at"]),
        closes_at=_moment(entry["closes_at"]),
        trade_count=entry["trade_count"],
        path=tuple(path),
        resolution=resolution,
    )
    if not spec.opens_at < spec.closes_at:
        raise ValueError(f"{spec.slug}: it must open before it closes")
    if spec.path[0].at != spec.opens_at:
        raise ValueError(f"{spec.slug}: its path starts when it opens")
    times = [point.at for point in spec.path]
    if times != sorted(times) or times[-1] >= spec.trading_ends:
        raise ValueError(f"{spec.slug}: its path runs in order, before trading ends")
    if resolution is not None and resolution.at <= spec.opens_at:
        raise ValueError(f"{spec.slug}: it resolves after it opens")
    return spec


def demo_markets_load(path: Path = DEMO_MARKETS_FILE) -> tuple[DemoMarket, ...]:
    """The demo markets of the data file, each checked: dates in order, beliefs that are probabilities,
    and a source for every resolution."""
    return tuple(_spec(entry) for entry in json.loads(path.read_text(encoding="utf-8")))


DEMO_MARKETS = demo_markets_load()


@dataclass
class Tally:
    executed: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    resolved: int = 0

    def refuse(self, error: DomainError) -> None:
        self.refused[error.code] = self.refused.get(error.code, 0) + 1


def _normalise(values: Sequence[float]) -> list[float]:
    total = math.fsum(values)
    return [value / total for value in values]


def belief_at(spec: DemoMarket, moment: datetime) -> list[float]:
    """The crowd's belief at `moment`: the path's points, joined by straight lines."""
    path = spec.path
    if moment <= path[0].at:
        return list(path[0].belief)
    for before, after in pairwise(path):
        if moment < after.at:
            share = (moment - before.at) / (after.at - before.at)
            return [a + (b - a) * share for a, b in zip(before.belief, after.belief, strict=True)]
    return list(path[-1].belief)


def _trade_times(spec: DemoMarket, end: datetime, rng: random.Random) -> list[datetime]:
    """Trades spread over the market's life, with a few right after each piece of news."""
    start = spec.opens_at + timedelta(hours=1)
    window = (end - start).total_seconds()
    times = [start + timedelta(seconds=rng.uniform(0, window)) for _ in range(spec.trade_count)]
    for point in spec.path[1:]:
        reaction = min(NEWS_REACTION, end - point.at).total_seconds()
        times += [point.at + timedelta(seconds=rng.uniform(60, max(reaction, 120))) for _ in range(TRADES_AFTER_NEWS)]
    return sorted(moment for moment in times if start <= moment < end)


@dataclass(order=True)
class Event:
    at: datetime
    # Within one moment: open (0), trade (1), close (2), resolve (3).
    order: int
    sequence: int
    spec: DemoMarket = field(compare=False)
    kind: str = field(compare=False)


class Command(BaseCommand):
    help = "Loads the demo markets, users and their trading history. Safe to run again: it changes nothing."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--seed", type=int, default=20240626, help="Random seed (the history is deterministic).")

    def handle(self, *args: object, **options: Any) -> None:
        now = timezone.now().replace(microsecond=0)
        rng = random.Random(options["seed"])
        with transaction.atomic():
            admin = self._admin()
            users = [self._user(username) for username in DEMO_USERS]
            tally = Tally()
            missing = [spec for spec in DEMO_MARKETS if not Market.objects.filter(slug=spec.slug).exists()]
            self._play(missing, users=users, admin=admin, now=now, rng=rng, tally=tally)
            violations = markets_reconcile()
            if violations:
                raise CommandError("Demo data broke ledger invariants: " + "; ".join(map(str, violations)))

        if missing:
            refused = ", ".join(f"{count} {code}" for code, count in sorted(tally.refused.items())) or "none"
            self.stdout.write(
                f"Created {len(missing)} markets with {tally.executed} trades (refused as live: {refused}); "
                f"{tally.resolved} resolved and settled."
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

    def _play(
        self,
        specs: Sequence[DemoMarket],
        *,
        users: list[User],
        admin: User,
        now: datetime,
        rng: random.Random,
        tally: Tally,
    ) -> None:
        """Every market's opening, trades, close and resolution, in the order they happened."""
        events: list[Event] = []
        for spec in specs:
            end = min(spec.trading_ends, now) - timedelta(minutes=30)
            events.append(Event(spec.opens_at, 0, len(events), spec, "open"))
            events += [Event(moment, 1, len(events), spec, "trade") for moment in _trade_times(spec, end, rng)]
            if spec.closes_at <= now and (spec.resolution is None or spec.closes_at < spec.resolution.at):
                events.append(Event(spec.closes_at, 2, len(events), spec, "close"))
            if spec.resolution is not None and spec.resolution.at <= now:
                events.append(Event(spec.resolution.at, 3, len(events), spec, "resolve"))
        markets: dict[str, Market] = {}
        codes: dict[str, list[str]] = {}
        # Each trader leans their own way on every outcome of every market, fixed for the market's life.
        leanings: dict[tuple[str, int], list[float]] = {}
        for event in sorted(events):
            spec = event.spec
            if event.kind == "open":
                market = self._open(spec, admin=admin)
                markets[spec.slug] = market
                codes[spec.slug] = list(market.outcomes.order_by("index").values_list("code", flat=True))
                for user in users:
                    leanings[spec.slug, user.pk] = [rng.gauss(0.0, 0.15) for _ in codes[spec.slug]]
            elif event.kind == "trade":
                trader = rng.choice(users)
                crowd = belief_at(spec, event.at)
                personal = _normalise(
                    [
                        p * math.exp(lean + rng.gauss(0.0, 0.06))
                        for p, lean in zip(crowd, leanings[spec.slug, trader.pk], strict=True)
                    ]
                )
                self._trade(
                    market=markets[spec.slug],
                    codes=codes[spec.slug],
                    trader=trader,
                    belief=personal,
                    at=event.at,
                    rng=rng,
                    tally=tally,
                )
            elif event.kind == "close":
                market_close(market=markets[spec.slug], now=spec.closes_at)
            else:
                self._resolve(spec, market=markets[spec.slug], admin=admin)
                tally.resolved += 1

    def _open(self, spec: DemoMarket, *, admin: User) -> Market:
        return market_create(
            slug=spec.slug,
            question=spec.question,
            kind=Market.Kind.MULTIPLE if spec.outcomes else Market.Kind.BINARY,
            outcomes=spec.outcomes,
            initial_probabilities=list(spec.initial_probabilities),
            liquidity=spec.liquidity,
            closes_at=spec.closes_at,
            description=spec.description,
            resolution_criteria=spec.resolution_criteria,
            category=spec.category,
            created_by=admin,
            now=spec.opens_at,
        )

    @staticmethod
    def _resolve(spec: DemoMarket, *, market: Market, admin: User) -> None:
        """Resolves as it happened (an open market closes first) and settles at once, as the worker would."""
        resolution = spec.resolution
        if resolution is None:
            raise CommandError(f"{spec.slug} has no resolution to apply")
        market_resolve(
            market=market,
            user=admin,
            kind=resolution.kind,
            outcome_code=resolution.outcome,
            reason=f"{resolution.reason} Source: {resolution.source}",
            now=resolution.at,
        )
        market_settle(market_id=market.pk, now=resolution.at)

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
        # Keep credits for the other markets: a buy spends at most a quarter of the balance.
        budget = float(wallet_get(user=trader).balance) * 0.25 if side == Trade.Side.BUY else math.inf
        if style < 0.3 and float(full.amount) * share <= budget:
            request["probability"] = Decimal(f"{prices[index] + (target - prices[index]) * share:.4f}")
        elif style < 0.65 or side == Trade.Side.BUY:
            request["amount"] = _decimal(min(float(full.amount) * share, budget))
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


def _decimal(value: float, places: Decimal = CENT) -> Decimal:
    return Decimal(f"{value:.6f}").quantize(places, rounding=ROUND_DOWN)
