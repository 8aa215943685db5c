"""Random sequences of users, markets, trades and closes against the real services and PostgreSQL.

After every step every ledger and market invariant holds (markets_reconcile() is empty), each
wallet equals its grant minus what its trades paid plus what they received, and a refused
operation wrote nothing at all. Jepsen's bank test, in spirit.
"""

import itertools
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    initialize,
    invariant,
    multiple,
    rule,
)

from accounts.models import Account, LedgerEntry, LedgerTransaction, User
from accounts.services import user_create
from markets.errors import (
    DomainError,
    InvalidInput,
    MarketClosed,
    MarketStateError,
)
from markets.models import Market, Outcome, Position, PricePoint, Trade
from markets.services import market_close, market_create, markets_reconcile, trade_execute
from tests.factories import trade_request
from tests.markets.machines import EXPECTED_REFUSALS, DatabaseMachine, machine_run

names = itertools.count()

liquidities = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("3000"), places=2)
shares = st.one_of(
    st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("50"), places=6),
    st.decimals(min_value=Decimal("50"), max_value=Decimal("20000"), places=2),
)
amounts = st.one_of(
    st.decimals(min_value=Decimal("0.01"), max_value=Decimal("100"), places=2),
    # Beyond every wallet: must be refused with InsufficientFunds and change nothing.
    st.decimals(min_value=Decimal("100"), max_value=Decimal("5000"), places=2),
)
probabilities = st.floats(min_value=0.001, max_value=0.999).map(lambda p: f"{p:.4f}")
quantities = st.one_of(
    shares.map(lambda value: {"shares": value}),
    amounts.map(lambda value: {"amount": value}),
    probabilities.map(lambda value: {"probability": value}),
)
rarely = st.integers(min_value=0, max_value=3)
bounds = st.one_of(st.none(), st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1500"), places=2))


def snapshot() -> tuple[object, ...]:
    """Everything a trade or close could write, cheap enough to take on every step."""
    return (
        Trade.objects.count(),
        LedgerTransaction.objects.count(),
        LedgerEntry.objects.count(),
        PricePoint.objects.count(),
        tuple(Account.objects.order_by("pk").values_list("pk", "balance")),
        tuple(Position.objects.order_by("pk").values_list("pk", "shares", "net_cost")),
        tuple(Outcome.objects.order_by("pk").values_list("pk", "shares_outstanding", "probability")),
        tuple(Market.objects.order_by("pk").values_list("pk", "status", "volume")),
    )


@dataclass
class Model:
    """What the wallets should hold, kept independently of the ledger."""

    balances: dict[int, Decimal] = field(default_factory=dict)


class LedgerMachine(DatabaseMachine):
    users = Bundle("users")
    markets = Bundle("markets")

    def __init__(self) -> None:
        super().__init__()
        self.model = Model()

    @initialize(target=users)
    def first_user(self) -> User:
        return self._user()

    def _user(self) -> User:
        user = user_create(username=f"sm{next(names)}", password=None)
        self.model.balances[user.pk] = Decimal(settings.FORECASTLE_SIGNUP_GRANT)
        return user

    # Rules other than trading fire on a share of their draws only, so most steps trade.
    @rule(target=users, chance=rarely)
    def add_user(self, chance: int) -> User | MultipleResults[User]:
        return self._user() if chance == 0 else multiple()

    @initialize(target=markets, liquidity=liquidities)
    def first_market(self, liquidity: Decimal) -> Market | MultipleResults[Market]:
        return self.add_market(outcome_count=2, weights=[1, 1], liquidity=liquidity)

    @rule(
        target=markets,
        outcome_count=st.integers(min_value=2, max_value=6),
        weights=st.lists(st.integers(min_value=1, max_value=40), min_size=6, max_size=6),
        liquidity=liquidities,
        chance=rarely,
    )
    def add_market(
        self, outcome_count: int, weights: list[int], liquidity: Decimal, chance: int = 0
    ) -> Market | MultipleResults[Market]:
        if chance:
            return multiple()
        chosen = weights[:outcome_count]
        initial = [weight / sum(chosen) for weight in chosen]
        binary = outcome_count == 2
        return market_create(
            slug=f"sm-market-{next(names)}",
            question="A question?",
            kind=Market.Kind.BINARY if binary else Market.Kind.MULTIPLE,
            outcomes=None if binary else [(f"O{index}", f"Outcome {index}") for index in range(outcome_count)],
            initial_probabilities=initial,
            liquidity=liquidity,
            closes_at=self.now + timedelta(days=7),
            now=self.now,
        )

    @rule(user=users, market=markets, choice=st.integers(min_value=0, max_value=5), quantity=quantities, bound=bounds)
    def buy(self, user: User, market: Market, choice: int, quantity: dict[str, object], bound: Decimal | None) -> None:
        self._trade(user, market, choice, "buy", quantity, bound)

    @rule(
        user=users,
        market=markets,
        choice=st.integers(min_value=0, max_value=5),
        quantity=quantities,
        bound=bounds,
        portion=st.one_of(st.none(), st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1"), places=2)),
    )
    def sell(
        self,
        user: User,
        market: Market,
        choice: int,
        quantity: dict[str, object],
        bound: Decimal | None,
        portion: Decimal | None,
    ) -> None:
        # Random quantities mostly exceed what a trader holds; a portion of the position sells for real.
        codes = list(market.outcomes.values_list("code", flat=True))
        held = Position.objects.filter(user=user, outcome__code=codes[choice % len(codes)], outcome__market=market)
        shares_held = held.values_list("shares", flat=True).first()
        if portion is not None and shares_held:
            quantity = {"shares": (shares_held * portion).quantize(Decimal("0.000001"))}
        self._trade(user, market, choice, "sell", quantity, bound)

    def _trade(
        self, user: User, market: Market, choice: int, side: str, quantity: dict[str, object], bound: Decimal | None
    ) -> None:
        codes = list(market.outcomes.values_list("code", flat=True))
        code = codes[choice % len(codes)]
        before = snapshot()
        refusal: DomainError | None = None
        try:
            result = trade_execute(
                user=user,
                market=market,
                request=trade_request(
                    code,
                    side,
                    shares=quantity.get("shares"),
                    amount=quantity.get("amount"),
                    probability=quantity.get("probability"),
                    max_cost=bound if side == "buy" else None,
                    min_proceeds=bound if side == "sell" else None,
                ),
                now=self.now,
            )
        except EXPECTED_REFUSALS as error:
            refusal = error
        if refusal is not None:
            event(f"refused: {refusal.code}")
            note(f"refused {side} {quantity} {code}: {refusal.code} {refusal.message}")
            assert snapshot() == before, f"{refusal.code} refused the trade but something was written"
            return
        event(f"traded: {side} by {next(iter(quantity))}")
        trade = result.trade
        note(f"{side} {trade.shares} {code} for {trade.amount}")
        assert trade.amount > 0
        assert trade.shares > 0
        if side == "buy":
            assert bound is None or trade.amount <= bound
            self.model.balances[user.pk] -= trade.amount
        else:
            assert bound is None or trade.amount >= bound
            self.model.balances[user.pk] += trade.amount
        assert result.balance == self.model.balances[user.pk]

    @rule(user=users, market=markets, side=st.sampled_from(["buy", "sell"]), chance=rarely)
    def trade_after_the_close_time(self, user: User, market: Market, side: str, chance: int) -> None:
        if chance:
            return
        before = snapshot()
        with pytest.raises(MarketClosed):
            trade_execute(
                user=user,
                market=market,
                request=trade_request("YES" if market.is_binary else "O0", side, shares="1"),
                now=self.now + timedelta(days=8),
            )
        assert snapshot() == before

    @rule(market=markets, chance=rarely)
    def close(self, market: Market, chance: int) -> None:
        if chance:
            return
        before = snapshot()
        try:
            market_close(market=market, now=self.now)
        except MarketStateError:
            assert snapshot() == before
            return
        assert Market.objects.get(pk=market.pk).status == Market.Status.CLOSED

    @rule(user=users, market=markets)
    def sell_everything(self, user: User, market: Market) -> None:
        """Selling a whole position, the case where rounding most often bites."""
        position = Position.objects.filter(user=user, market=market, shares__gt=0).select_related("outcome").first()
        if position is None:
            return
        try:
            result = trade_execute(
                user=user,
                market=market,
                request=trade_request(position.outcome.code, "sell", shares=position.shares),
                now=self.now,
            )
        except (MarketClosed, InvalidInput):
            return
        self.model.balances[user.pk] += result.trade.amount
        assert result.position_shares == 0

    @invariant()
    def every_invariant_holds(self) -> None:
        assert markets_reconcile() == []

    @invariant()
    def wallets_match_the_model(self) -> None:
        actual = dict(
            Account.objects.filter(kind=Account.Kind.WALLET, user_id__in=self.model.balances).values_list(
                "user_id", "balance"
            )
        )
        assert actual == self.model.balances


@pytest.mark.slow
def test_random_trading_keeps_every_ledger_invariant(db):
    machine_run(LedgerMachine, ci_examples=20)


def test_the_machine_catches_a_broken_invariant(db):
    """The invariants can fail: a cached balance nudged behind the ledger's back is reported."""
    machine = LedgerMachine()
    try:
        user = machine._user()
        Account.objects.filter(user=user).update(balance=Decimal("1.000001"))
        with pytest.raises(AssertionError):
            machine.every_invariant_holds()
        with pytest.raises(AssertionError):
            machine.wallets_match_the_model()
    finally:
        machine.teardown()
