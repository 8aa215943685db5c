"""`manage.py demo_data`: demo markets, users and six weeks of trading, loaded idempotently.

Everything goes through the services (user_create, market_create, trade_execute, market_close)
with `now` set in the past, so the history obeys every ledger invariant exactly like live trading.
A market that already exists is left alone (its trades too), so a second run changes nothing.
"""

import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from decimal import ROUND_DOWN, Decimal
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


DEMO_MARKETS = (
    DemoMarket(
        slug="rutte-nato-secretary-general",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        category="Politics",
        description=(
            "Jens Stoltenberg's term as NATO Secretary-General ends on 1 October 2024 and the 32 allies must agree "
            "on a successor by consensus. Outgoing Dutch prime minister Mark Rutte declared his candidacy and quickly "
            "won the backing of the United States, the United Kingdom, France and Germany. Hungary, Slovakia and "
            "Turkey held out for assurances, and Romania's president Klaus Iohannis entered the race in March."
        ),
        resolution_criteria=(
            "Resolves YES if, on or before 1 July 2024 (23:59 CET), the North Atlantic Council formally appoints "
            "Mark Rutte as the next NATO Secretary-General, as announced on nato.int. An informal endorsement, a "
            "leak or a statement by individual allies is not enough. Resolves NO otherwise."
        ),
        outcomes=None,
        initial_probabilities=(0.6, 0.4),
        belief_at_end=(0.91, 0.09),
        liquidity=150,
        opened_days_ago=HISTORY_DAYS,
        closes_in_days=28,
        trade_count=110,
    ),
    DemoMarket(
        slug="next-nato-secretary-general",
        question="Who will be the next NATO Secretary-General?",
        category="Politics",
        description=(
            "The allies choose Jens Stoltenberg's successor by consensus. Declared or widely discussed candidates "
            "include Dutch prime minister Mark Rutte, Estonian prime minister Kaja Kallas, Latvian foreign minister "
            "Edgars Rinkēvičs and Romanian president Klaus Iohannis."
        ),
        resolution_criteria=(
            "Resolves to the person the North Atlantic Council formally appoints as the 14th Secretary-General of "
            "NATO, as announced on nato.int. Resolves OTHER if anyone not listed is appointed. If no appointment "
            "is made before the market's close, the market stays closed until one is."
        ),
        outcomes=(
            ("RUTTE", "Mark Rutte"),
            ("KALLAS", "Kaja Kallas"),
            ("RINKEVICS", "Edgars Rinkēvičs"),
            ("IOHANNIS", "Klaus Iohannis"),
            ("OTHER", "Other"),
        ),
        initial_probabilities=(0.45, 0.2, 0.1, 0.1, 0.15),
        belief_at_end=(0.88, 0.03, 0.03, 0.02, 0.04),
        liquidity=200,
        opened_days_ago=HISTORY_DAYS - 1,
        closes_in_days=35,
        trade_count=110,
    ),
    DemoMarket(
        slug="ecb-deposit-rate-cut-next-meeting",
        question="Will the ECB lower its deposit facility rate at its next monetary policy meeting?",
        category="Economics",
        description=(
            "Euro-area inflation has fallen back towards the 2% target while growth stays weak. Markets price "
            "further easing, but several Governing Council members have warned against moving too fast."
        ),
        resolution_criteria=(
            "Resolves YES if the press release of the first scheduled ECB monetary policy meeting after this market "
            "opens announces a lower deposit facility rate. Resolves NO if the rate is held or raised."
        ),
        outcomes=None,
        initial_probabilities=(0.5, 0.5),
        belief_at_end=(0.68, 0.32),
        liquidity=100,
        opened_days_ago=30,
        closes_in_days=21,
        trade_count=40,
    ),
    DemoMarket(
        slug="warmest-year-on-record-copernicus",
        question="Will this calendar year be the warmest on record according to Copernicus (C3S)?",
        category="Science",
        description=(
            "The Copernicus Climate Change Service publishes global mean surface air temperature from the ERA5 "
            "reanalysis each month. Recent years have repeatedly set new records, helped by El Niño."
        ),
        resolution_criteria=(
            "Resolves YES if the Copernicus Global Climate Highlights report for the calendar year in which this "
            "market opened ranks it as the warmest year in the ERA5 record. Resolves NO otherwise."
        ),
        outcomes=None,
        initial_probabilities=(0.5, 0.5),
        belief_at_end=(0.35, 0.65),
        liquidity=100,
        opened_days_ago=36,
        closes_in_days=42,
        trade_count=35,
    ),
    DemoMarket(
        slug="next-champions-league-winner",
        question="Who will win the next UEFA Champions League final?",
        category="Sports",
        description="The favourites for Europe's top club competition, with every other club grouped under Other.",
        resolution_criteria=(
            "Resolves to the club that wins the next UEFA Champions League final, as reported by uefa.com, "
            "including after extra time or penalties. Resolves OTHER for any club not listed."
        ),
        outcomes=(
            ("REAL", "Real Madrid"),
            ("MANCITY", "Manchester City"),
            ("BAYERN", "Bayern Munich"),
            ("ARSENAL", "Arsenal"),
            ("OTHER", "Other"),
        ),
        initial_probabilities=(0.2, 0.2, 0.15, 0.1, 0.35),
        belief_at_end=(0.27, 0.14, 0.13, 0.16, 0.3),
        liquidity=150,
        opened_days_ago=33,
        closes_in_days=49,
        trade_count=45,
    ),
    DemoMarket(
        slug="open-weights-model-tops-lmarena",
        question="Will an open-weights model reach first place on the LMArena text leaderboard before this closes?",
        category="Technology",
        description=(
            "The LMArena (formerly Chatbot Arena) text leaderboard ranks language models by crowd-sourced blind "
            "comparisons. Proprietary models have held the top spot for most of its history."
        ),
        resolution_criteria=(
            "Resolves YES if, at any time before the market closes, a model whose weights are publicly downloadable "
            "is ranked first (alone or tied) on the LMArena text leaderboard's default view, as shown by an archived "
            "snapshot. Resolves NO otherwise."
        ),
        outcomes=None,
        initial_probabilities=(0.25, 0.75),
        belief_at_end=(0.18, 0.82),
        liquidity=80,
        opened_days_ago=25,
        closes_in_days=30,
        trade_count=30,
    ),
    DemoMarket(
        slug="brent-above-90-before-close",
        question="Will Brent crude settle above $90 a barrel on any trading day before this market closes?",
        category="Economics",
        description=(
            "Brent has traded in a range through the year, pushed up by supply cuts and tension in the Middle East "
            "and pulled down by weak demand in China. This market closed before the end of the demo history."
        ),
        resolution_criteria=(
            "Resolves YES if the ICE Brent front-month futures contract settles above $90.00 on any trading day "
            "between the market's opening and its close. Resolves NO otherwise."
        ),
        outcomes=None,
        initial_probabilities=(0.3, 0.7),
        belief_at_end=(0.08, 0.92),
        liquidity=80,
        opened_days_ago=40,
        closes_in_days=-6,
        trade_count=35,
    ),
)


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
