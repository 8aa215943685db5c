"""Random sequences of trades, limit orders, cancels, expiries, closes and resolutions against the real services.

After every step: every ledger and market invariant holds (markets_reconcile(), which includes the orders'
reserves and q equal to the sum of positions); each user's credits (wallet plus reserve) are their grant less
what their trades and fills paid, plus what they received (nothing reserved is spent twice or lost); no fill
ever executed past its order's limit; a refused operation wrote nothing.
"""

import itertools
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models import Case, DecimalField, F, Sum, When
from hypothesis import event, note
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, initialize, invariant, rule

from accounts.models import Account, LedgerEntry, LedgerTransaction, User
from accounts.services import user_create
from markets.errors import (
    DomainError,
    MarketStateError,
    OrderNotOpen,
)
from markets.models import LimitOrder, Market, Outcome, Position, Trade
from markets.services import market_close, market_create, market_resolve, markets_reconcile, trade_execute
from markets.services.orders import OrderRequest, order_cancel, order_place, orders_expire_due
from tests.factories import trade_request
from tests.markets.machines import EXPECTED_REFUSALS, DatabaseMachine, machine_run

names = itertools.count()

LIMIT_RANGE = (Decimal("0.02"), Decimal("0.98"))
limits = st.decimals(min_value=LIMIT_RANGE[0], max_value=LIMIT_RANGE[1], places=2)
# Half the orders rest a few points from the price (a buy below it, a sell above), where the next trades cross
# them (with every limit drawn anywhere, most orders rested where no trade of the example reached them).
distances = st.one_of(st.none(), st.integers(min_value=1, max_value=8))
POINT = Decimal("0.01")
credit_sizes = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("400"), places=2)
share_sizes = st.decimals(min_value=Decimal("0.000001"), max_value=Decimal("200"), places=6)
amounts = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300"), places=2)
# Closing and resolving end a market's trading for the rest of the example: they fire on a tenth of their draws,
# a value inside the range (Hypothesis favours a range's ends: firing on 0 closed most markets at once).
rarely = st.integers(min_value=0, max_value=9).map(lambda draw: draw == 4)


def snapshot() -> tuple[object, ...]:
    return (
        Trade.objects.count(),
        LedgerTransaction.objects.count(),
        LedgerEntry.objects.count(),
        tuple(LimitOrder.objects.order_by("pk").values_list("pk", "status", "remaining")),
        tuple(Account.objects.order_by("pk").values_list("pk", "balance")),
        tuple(Position.objects.order_by("pk").values_list("pk", "shares", "reserved_shares")),
        tuple(Outcome.objects.order_by("pk").values_list("pk", "shares_outstanding", "best_buy_limit")),
    )


class OrderMachine(DatabaseMachine):
    users = Bundle("users")
    markets = Bundle("markets")

    def __init__(self) -> None:
        super().__init__()
        self.user_ids: list[int] = []

    @initialize(target=users)
    def first_user(self) -> User:
        return self._user()

    @initialize(target=users)
    def second_user(self) -> User:
        return self._user()

    def _user(self) -> User:
        user = user_create(username=f"om{next(names)}", password=None)
        self.user_ids.append(user.pk)
        return user

    @initialize(
        target=markets,
        outcome_count=st.sampled_from([2, 2, 3]),
        liquidity=st.sampled_from([20, 100, 400]),
        book=st.lists(
            st.tuples(st.integers(0, 5), st.sampled_from(["buy", "sell"]), st.integers(1, 8)), min_size=1, max_size=4
        ),
        push=st.integers(min_value=1, max_value=300),
    )
    def first_market(self, outcome_count: int, liquidity: int, book: list[tuple[int, str, int]], push: int) -> Market:
        market = self._market(outcome_count, liquidity)
        self._book(market, book, push)
        return market

    @initialize(target=markets, outcome_count=st.sampled_from([2, 3]), liquidity=st.sampled_from([50, 200]))
    def second_market(self, outcome_count: int, liquidity: int) -> Market:
        return self._market(outcome_count, liquidity)

    def _market(self, outcome_count: int, liquidity: int) -> Market:
        binary = outcome_count == 2
        return market_create(
            slug=f"om-market-{next(names)}",
            question="A question?",
            kind=Market.Kind.BINARY if binary else Market.Kind.MULTIPLE,
            outcomes=None if binary else [(f"O{index}", f"Outcome {index}") for index in range(outcome_count)],
            liquidity=liquidity,
            closes_at=self.now + timedelta(days=7),
            now=self.now,
        )

    def _book(self, market: Market, book: list[tuple[int, str, int]], push: int) -> None:
        """Orders of a user who only rests them, a few points from the price (a sell after buying the shares), then
        a trade of `push` credits by another toward the first of them: with only the rules' own orders, a fill
        pass filled an order in about one example in thirty; the rules' trades fill the rest of this book."""
        owner = self._user()
        for choice, side, distance in book:
            code = self._code(market, choice)
            if side == "sell":
                trade_execute(user=owner, market=market, request=trade_request(code, "buy", shares=20), now=self.now)
            request = OrderRequest(
                outcome=code,
                side=side,
                limit=self._near(market, code, side, distance),
                size=Decimal(20 if side == "buy" else 10),
            )
            order_place(user=owner, market=market, request=request, now=self.now)
        choice, side, _distance = book[0]
        toward = self._code(market, choice if side == "sell" else choice + 1)
        push_request = trade_request(toward, "buy", amount=push)
        trade_execute(user=self._user(), market=market, request=push_request, now=self.now)

    def _near(self, market: Market, code: str, side: str, distance: int) -> Decimal:
        """A limit `distance` points from the outcome's price, on the side where the order rests."""
        price = Decimal(str(Outcome.objects.get(market=market, code=code).probability)).quantize(POINT)
        away = distance * POINT
        return min(max(price - away if side == "buy" else price + away, LIMIT_RANGE[0]), LIMIT_RANGE[1])

    def _code(self, market: Market, choice: int) -> str:
        codes = list(market.outcomes.order_by("index").values_list("code", flat=True))
        return codes[choice % len(codes)]

    def _refusable(self, action: str, run: Callable[[], object], actor: User | None = None) -> None:
        before = snapshot()
        # Fills of other people's orders: only a fill pass writes them (an order's marketable part is its owner's).
        passes = Trade.objects.filter(order__isnull=False).exclude(order__user=actor)
        passed = passes.count()
        refusal: DomainError | None = None
        try:
            run()
        except (*EXPECTED_REFUSALS, OrderNotOpen, MarketStateError) as error:
            refusal = error
        if refusal is not None:
            event(f"{action} refused: {refusal.code}")
            assert snapshot() == before, f"{refusal.code} refused {action} but something was written"
            return
        fills = Trade.objects.filter(order__isnull=False).count()
        event(f"{action} done" + (", fills on the book" if fills else ""))
        if actor is not None and passes.count() > passed:
            event("a fill pass filled an order")

    @rule(user=users, market=markets, choice=st.integers(0, 5), side=st.sampled_from(["buy", "sell"]), amount=amounts)
    def trade(self, user: User, market: Market, choice: int, side: str, amount: Decimal) -> None:
        code = self._code(market, choice)
        quantity = {"amount": amount} if side == "buy" else {"shares": amount / 3}
        note(f"{user.pk} {side} {quantity} {code}")
        self._refusable(
            "trade",
            lambda: trade_execute(
                user=user, market=market, request=trade_request(code, side, **quantity), now=self.now
            ),
            actor=user,
        )

    @rule(user=users, pick=st.integers(0, 50), amount=amounts)
    def cross(self, user: User, pick: int, amount: Decimal) -> None:
        """A trade aimed at someone else's resting order: a buy of its outcome, past a sell's limit, or of the next
        outcome (which takes the order's down), past a buy's."""
        resting = list(
            LimitOrder.objects.filter(status="open")
            .exclude(user=user)
            .order_by("pk")
            .values_list("market_id", "outcome__index", "side")
        )
        if not resting:
            return
        market_id, index, side = resting[pick % len(resting)]
        market = Market.objects.get(pk=market_id)
        code = self._code(market, index if side == "sell" else index + 1)
        note(f"{user.pk} buys {amount} {code} against a resting {side}")
        self._refusable(
            "trade",
            lambda: trade_execute(
                user=user, market=market, request=trade_request(code, "buy", amount=amount), now=self.now
            ),
            actor=user,
        )

    @rule(
        user=users,
        market=markets,
        choice=st.integers(0, 5),
        side=st.sampled_from(["buy", "sell"]),
        limit=limits,
        distance=distances,
        credits=credit_sizes,
        shares=share_sizes,
        expires=st.one_of(st.none(), st.integers(min_value=1, max_value=48)),
    )
    def place(
        self,
        user: User,
        market: Market,
        choice: int,
        side: str,
        limit: Decimal,
        distance: int | None,
        credits: Decimal,
        shares: Decimal,
        expires: int | None,
    ) -> None:
        code = self._code(market, choice)
        if distance is not None:
            limit = self._near(market, code, side, distance)
        request = OrderRequest(
            outcome=code,
            side=side,
            limit=limit,
            size=credits if side == "buy" else shares,
            expires_at=None if expires is None else self.now + timedelta(hours=expires),
        )
        note(f"{user.pk} order {request}")
        self._refusable(
            "order", lambda: order_place(user=user, market=market, request=request, now=self.now), actor=user
        )

    @rule(user=users, pick=st.integers(0, 50))
    def cancel(self, user: User, pick: int) -> None:
        mine = list(LimitOrder.objects.filter(user=user).order_by("pk").values_list("pk", flat=True))
        if mine:
            self._refusable("cancel", lambda: order_cancel(user=user, order_id=mine[pick % len(mine)], now=self.now))

    @rule(hours=st.integers(min_value=1, max_value=24))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        orders_expire_due(now=self.now)
        assert not LimitOrder.objects.filter(status="open", expires_at__lte=self.now).exists()

    @rule(market=markets, fires=rarely)
    def close(self, market: Market, fires: bool) -> None:
        if not fires:
            return
        self._refusable("close", lambda: market_close(market=market, now=self.now))

    @rule(market=markets, choice=st.integers(0, 5), fires=rarely)
    def resolve(self, market: Market, choice: int, fires: bool) -> None:
        if not fires:
            return
        staff = User.objects.filter(is_staff=True).first() or user_create(
            username=f"staff{next(names)}", password=None, is_staff=True, is_superuser=True
        )
        code = self._code(market, choice)
        self._refusable(
            "resolve",
            lambda: market_resolve(
                market=market, user=staff, kind="outcome", outcome_code=code, reason="Known", now=self.now
            ),
        )
        assert not LimitOrder.objects.filter(market=market, status="open").exists()

    @invariant()
    def every_invariant_holds(self) -> None:
        assert markets_reconcile() == []

    @invariant()
    def nothing_spent_twice(self) -> None:
        signed = Case(
            When(side="buy", then=-F("amount")),
            default=F("amount"),
            output_field=DecimalField(max_digits=20, decimal_places=6),
        )
        moved = dict(Trade.objects.values("user_id").annotate(net=Sum(signed)).values_list("user_id", "net"))
        held = dict(Account.objects.filter(key__startswith="wallet:").values_list("user_id", "balance"))
        reserved = dict(Account.objects.filter(key__startswith="reserved:").values_list("key", "balance"))
        grant = Decimal(settings.FORECASTLE_SIGNUP_GRANT)
        for user_id in self.user_ids:
            credits = held[user_id] + reserved.get(f"reserved:{user_id}", Decimal(0))
            assert credits == grant + moved.get(user_id, Decimal(0)), user_id

    @invariant()
    def no_fill_past_its_limit(self) -> None:
        indexes = dict(Outcome.objects.values_list("pk", "index"))
        for side, after, outcome_id, limit in Trade.objects.filter(order__isnull=False).values_list(
            "side", "probabilities_after", "outcome_id", "order__limit_probability"
        ):
            price = after[indexes[outcome_id]]
            if side == "buy":
                assert price <= float(limit)
            else:
                assert price >= float(limit)


@pytest.mark.slow
def test_random_orders_keep_every_invariant(db):
    machine_run(OrderMachine, ci_examples=30)


def test_the_machine_catches_a_reserve_spent_behind_the_ledgers_back(db):
    machine = OrderMachine()
    try:
        user = machine._user()
        Account.objects.filter(user=user).update(balance=Decimal("999"))
        with pytest.raises(AssertionError):
            machine.nothing_spent_twice()
    finally:
        machine.teardown()
