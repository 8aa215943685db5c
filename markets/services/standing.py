"""Standing forecasts: "I believe 70%; keep this market within 3 points of it, with up to 200 credits, until
1 March" (docs/orders.md, "Standing forecasts").

A standing forecast is a pair of resting limit orders on one outcome (markets.services.orders): buy below
`belief - band`, sell above `belief + band`. They fill like any order (markets.services.fills: by other people's
trades only, once per triggering trade, never past their limits); after a pass that filled one of them, the
standing forecast re-arms (`standing_fills_rearm`, a fill callback under the market's lock): the side that did not
fill grows by what the fill brought (shares bought can be sold, credits received can buy again). Its bounds:
- the buy side spends at most `budget` credits net (`spent`: paid less received by its fills), and no more than
  its owner's wallet holds;
- the sell side sells only shares its owner holds and no other sell order holds back (including what it bought).

Every write takes the market's lock first. Cancelling, expiry and the market's close, halt or resolution end the
standing forecast and its orders together, releasing their reserves (orders_end).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import CREDIT_QUANTUM, ZERO
from accounts.services import ledger_post, wallet_lock
from markets.errors import IdempotencyConflict, InsufficientFunds, InvalidInput, StandingNotActive
from markets.locks import market_lock
from markets.models import LimitOrder, Market, Position, StandingForecast, Trade
from markets.services.changes import market_changed
from markets.services.fills import Fill, best_limits_refresh
from markets.services.orders import (
    LIMIT_QUANTUM,
    OrderRequest,
    due_by_market_end,
    idempotently_placed,
    order_place_held,
    orders_end,
    reserved_account,
    resting_request_check,
)
from markets.services.trading import trade_lock_and_read, trading_check
from markets.trade_request import MAX_AMOUNT, MAX_PROBABILITY, MIN_PROBABILITY, canonical, request_fingerprint

# The band is given in percentage points (3 means three points either side), to a hundredth of a point.
BAND_POINTS_QUANTUM = Decimal("0.01")
REARMED = "re-armed"


@dataclass(frozen=True)
class StandingRequest:
    """A standing forecast as asked for, checked at once for everything that does not depend on the market."""

    outcome: str
    # The forecaster's probability, in (0, 1), to 4 decimal places.
    belief: Decimal
    # How far from the belief the market may stray before the orders trade, in percentage points.
    band_points: Decimal
    # Credits the buy side may spend, net of what the sell side brings back.
    budget: Decimal
    expires_at: datetime | None = None
    idempotency_key: str | None = None

    @property
    def band(self) -> Decimal:
        return self.band_points / 100

    def check(self, *, now: datetime) -> None:
        if not self.belief.is_finite() or not 0 < self.belief < 1:
            raise InvalidInput("Enter a belief strictly between 0 and 1.", field="belief")
        if self.belief != self.belief.quantize(LIMIT_QUANTUM):
            raise InvalidInput("Give the belief to a hundredth of a percent (4 decimal places).", field="belief")
        if not self.band_points.is_finite() or self.band_points <= 0:
            raise InvalidInput("Enter a band greater than zero (in percentage points).", field="band")
        if self.band_points != self.band_points.quantize(BAND_POINTS_QUANTUM):
            raise InvalidInput("Give the band to a hundredth of a point.", field="band")
        if self.belief - self.band < MIN_PROBABILITY or self.belief + self.band > MAX_PROBABILITY:
            raise InvalidInput(
                f"A band of {self.band_points} points around {self.belief * 100:.2f}% puts a limit outside 0.01% to "
                "99.99%: choose a narrower band.",
                field="band",
            )
        if not self.budget.is_finite() or self.budget <= 0:
            raise InvalidInput("Enter a budget greater than zero.", field="budget")
        if self.budget > MAX_AMOUNT:
            raise InvalidInput("That budget is too large.", field="budget")
        if self.budget != self.budget.quantize(CREDIT_QUANTUM):
            raise InvalidInput("Give the budget to at most 6 decimal places.", field="budget")
        resting_request_check(expires_at=self.expires_at, idempotency_key=self.idempotency_key, now=now)

    def fingerprint(self, *, market_id: int) -> str:
        return request_fingerprint(
            {
                "market": market_id,
                "outcome": self.outcome,
                "belief": canonical(self.belief),
                "band": canonical(self.band_points),
                "budget": canonical(self.budget),
                "expires_at": None if self.expires_at is None else self.expires_at.isoformat(),
            }
        )


@dataclass(frozen=True)
class StandingResult:
    forecast: StandingForecast
    # The trade its orders made at once (the price was outside the band), if any.
    trade_id: int | None
    replayed: bool = False


def standing_forecast_create(
    *, user: User, market: Market | int, request: StandingRequest, now: datetime | None = None
) -> StandingResult:
    """States a standing forecast: its buy and sell orders are placed at once (the part the price already allows
    trades at once, up to the limit), the rest rests. Refused with nothing written: InvalidInput (naming `belief`,
    `band`, `budget`, `expires_at` or `outcome`), InsufficientFunds (`budget` above the wallet), MarketClosed,
    MarketHalted. With an idempotency key, a retry returns the first one; another request under it conflicts."""
    request.check(now=now or timezone.now())
    market_id = market if isinstance(market, int) else market.pk
    fingerprint = request.fingerprint(market_id=market_id)
    return idempotently_placed(
        lambda: _create_locked(user=user, market_id=market_id, request=request, fingerprint=fingerprint, now=now),
        key=request.idempotency_key,
        replay=lambda key: _replay(user=user, key=key, fingerprint=fingerprint),
    )


def _replay(*, user: User, key: str, fingerprint: str) -> StandingResult | None:
    forecast = (
        StandingForecast.objects.select_related("market", "outcome").filter(user=user, idempotency_key=key).first()
    )
    if forecast is None:
        return None
    if forecast.fingerprint != fingerprint:
        raise IdempotencyConflict("This Idempotency-Key was already used for a different request.")
    first_trade = (
        Trade.objects.filter(order__standing_forecast=forecast, user=user)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    return StandingResult(forecast=forecast, trade_id=first_trade, replayed=True)


@transaction.atomic
def _create_locked(
    *, user: User, market_id: int, request: StandingRequest, fingerprint: str, now: datetime | None
) -> StandingResult:
    locked = trade_lock_and_read(user=user, market_id=market_id, idempotency_key=None)
    # Timed under the lock, as a trade is (markets.services.orders): its orders' trades come after every change
    # committed before it. Its orders take their own time unless its caller dated it.
    orders_now = now
    now = now or timezone.now()
    if request.idempotency_key is not None:
        replay = _replay(user=user, key=request.idempotency_key, fingerprint=fingerprint)
        if replay is not None:
            return replay
    trading_check(market=locked.market, now=now)
    outcome = next((o for o in locked.outcomes if o.code == request.outcome), None)
    if outcome is None:
        raise InvalidInput(f"Unknown outcome {request.outcome!r}.", field="outcome")
    if request.budget > locked.balance:
        raise InsufficientFunds(
            f"This budget is {request.budget:.2f} credits but you have {locked.balance:.2f} available.",
            field="budget",
        )
    forecast = StandingForecast.objects.create(
        user=user,
        market=locked.market,
        outcome=outcome,
        belief=request.belief,
        band=request.band,
        budget=request.budget,
        expires_at=request.expires_at,
        created_at=now,
        idempotency_key=request.idempotency_key,
        fingerprint=fingerprint,
    )
    buy = order_place_held(
        user=user,
        market_id=market_id,
        request=OrderRequest(
            outcome=outcome.code,
            side=Trade.Side.BUY,
            limit=forecast.buy_limit,
            size=request.budget,
            expires_at=request.expires_at,
        ),
        now=orders_now,
        standing_forecast_id=forecast.pk,
    )
    spent = buy.order.filled_amount
    trade_id = buy.trade_id
    # What it may sell: its owner's shares no other sell order holds back, including what the buy just bought.
    free = _free_shares(user_id=user.pk, outcome_id=outcome.pk)
    if free > ZERO:
        sell = order_place_held(
            user=user,
            market_id=market_id,
            request=OrderRequest(
                outcome=outcome.code,
                side=Trade.Side.SELL,
                limit=forecast.sell_limit,
                size=free,
                expires_at=request.expires_at,
            ),
            now=orders_now,
            standing_forecast_id=forecast.pk,
        )
        spent -= sell.order.filled_amount
        trade_id = trade_id or sell.trade_id
    if spent:
        StandingForecast.objects.filter(pk=forecast.pk).update(spent=spent)
        forecast.spent = spent
    forecast.market = locked.market
    forecast.outcome = outcome
    return StandingResult(forecast=forecast, trade_id=trade_id)


def _free_shares(*, user_id: int, outcome_id: int) -> Decimal:
    held = Position.objects.filter(user_id=user_id, outcome_id=outcome_id).values_list("shares", "reserved_shares")
    row = held.first()
    return ZERO if row is None else row[0] - row[1]


def standing_fills_rearm(market: Market, fills: list[Fill], now: datetime) -> None:
    """The fill callback (markets.services.fills.fill_callbacks): counts what the pass's fills of standing
    forecasts' orders spent or brought in, and re-arms those standing forecasts. Under the market's lock, in the
    triggering trade's transaction; it never trades (a re-armed order the price already crosses fills on the
    next trade by someone else)."""
    owners = dict(
        LimitOrder.objects.filter(
            pk__in=[fill.order.pk for fill in fills], standing_forecast__isnull=False
        ).values_list("pk", "standing_forecast_id")
    )
    if not owners:
        return
    spent: dict[int, Decimal] = defaultdict(Decimal)
    for fill in fills:
        forecast_id = owners.get(fill.order.pk)
        if forecast_id is not None:
            spent[forecast_id] += fill.quote.amount if fill.quote.side == Trade.Side.BUY else -fill.quote.amount
    for forecast_id, amount in spent.items():
        StandingForecast.objects.filter(pk=forecast_id).update(spent=F("spent") + amount)
    forecasts = StandingForecast.objects.filter(pk__in=spent, status=StandingForecast.Status.ACTIVE).order_by("pk")
    rearmed = False
    for forecast in forecasts:
        rearmed = _rearm(forecast=forecast, now=now) or rearmed
    if rearmed:
        best_limits_refresh(market_id=market.pk)


def _rearm(*, forecast: StandingForecast, now: datetime) -> bool:
    """Tops up each side to what the standing forecast may now use: the buy side to its budget less what it spent
    (within the wallet), the sell side to the free shares. A side that grows is replaced by a new order for all of
    it (the old one ends "re-armed"), so the added size queues behind orders already resting at that limit.
    Whether anything changed."""
    if forecast.expires_at is not None and forecast.expires_at <= now:
        return False
    current = {order.side: order for order in LimitOrder.objects.filter(standing_forecast=forecast, status="open")}
    wallet = wallet_lock(user_id=forecast.user_id)
    buy = current.get(Trade.Side.BUY)
    buy_held = buy.remaining if buy else ZERO
    buy_target = max(min(forecast.budget - forecast.spent, wallet.balance + buy_held), ZERO)
    sell = current.get(Trade.Side.SELL)
    sell_held = sell.remaining if sell else ZERO
    sell_target = _free_shares(user_id=forecast.user_id, outcome_id=forecast.outcome_id) + sell_held
    changed = False
    for side, old, held, target in (
        (Trade.Side.BUY, buy, buy_held, buy_target),
        (Trade.Side.SELL, sell, sell_held, sell_target),
    ):
        if target <= held:
            continue
        if old is not None:
            orders_end(
                market_id=forecast.market_id, orders=[old], status=LimitOrder.Status.CANCELLED, reason=REARMED, now=now
            )
        _rest(forecast=forecast, side=side, size=target, wallet=wallet, now=now)
        changed = True
    return changed


def _rest(*, forecast: StandingForecast, side: str, size: Decimal, wallet: Account, now: datetime) -> LimitOrder:
    """A standing forecast's order that rests without trading, its reserve moved: a buy's credits to the reserved
    account, a sell's shares held back on the position."""
    buying = side == Trade.Side.BUY
    order = LimitOrder.objects.create(
        user_id=forecast.user_id,
        market_id=forecast.market_id,
        outcome_id=forecast.outcome_id,
        side=side,
        limit_probability=forecast.buy_limit if buying else forecast.sell_limit,
        size=size,
        remaining=size,
        reserved_credits=size if buying else ZERO,
        reserved_shares=ZERO if buying else size,
        expires_at=forecast.expires_at,
        created_at=now,
        standing_forecast=forecast,
    )
    if buying:
        ledger_post(
            kind=LedgerTransaction.Kind.ORDER_RESERVE,
            entries=[(wallet, -size), (reserved_account(user_id=forecast.user_id), size)],
            memo=f"standing forecast {forecast.pk}: buy below {forecast.buy_limit}",
            reference=f"order:{order.pk}",
        )
    else:
        Position.objects.filter(user_id=forecast.user_id, outcome_id=forecast.outcome_id).update(
            reserved_shares=F("reserved_shares") + size
        )
    return order


def standing_forecast_cancel(*, user: User, forecast_id: int, now: datetime | None = None) -> StandingForecast:
    """Cancels the user's active standing forecast and its orders, releasing their reserves. Someone else's is
    StandingForecast.DoesNotExist; one that already ended raises StandingNotActive."""
    now = now or timezone.now()
    market_id = StandingForecast.objects.filter(pk=forecast_id, user=user).values_list("market_id", flat=True).first()
    if market_id is None:
        raise StandingForecast.DoesNotExist(f"No standing forecast {forecast_id}.")
    with transaction.atomic():
        market_lock(market_id=market_id)
        forecast = StandingForecast.objects.select_related("market", "outcome").get(pk=forecast_id, user=user)
        if not forecast.is_active:
            raise StandingNotActive(f"This standing forecast is already {forecast.status}.")
        _end(
            forecasts=[forecast],
            status=StandingForecast.Status.CANCELLED,
            reason="cancelled by you",
            now=now,
        )
        market_changed(market_id=market_id)
    forecast.refresh_from_db()
    return forecast


def _end(*, forecasts: list[StandingForecast], status: str, reason: str, now: datetime) -> None:
    """Ends active standing forecasts of one market and their open orders. Call under the market's lock."""
    expired = status == StandingForecast.Status.EXPIRED
    order_status = LimitOrder.Status.EXPIRED if expired else LimitOrder.Status.CANCELLED
    orders = list(LimitOrder.objects.filter(standing_forecast__in=forecasts, status=LimitOrder.Status.OPEN))
    if orders:
        orders_end(market_id=forecasts[0].market_id, orders=orders, status=order_status, reason=reason, now=now)
    StandingForecast.objects.filter(pk__in=[f.pk for f in forecasts], status=StandingForecast.Status.ACTIVE).update(
        status=status, end_reason=reason, ended_at=now
    )


def standing_forecasts_expire_due(*, now: datetime | None = None, batch: int = 1000) -> int:
    """Expires the active standing forecasts whose time has come (and their orders, if the orders' own sweep has
    not), one market at a time under its lock, each in its own transaction; how many. Idempotent and safe at once
    with itself and with markets.services.orders.orders_expire_due."""
    now = now or timezone.now()
    market_ids = list(
        StandingForecast.objects.filter(status=StandingForecast.Status.ACTIVE, expires_at__lte=now)
        .values_list("market_id", flat=True)
        .distinct()[:batch]
    )

    def end_due(market_id: int) -> int:
        active = StandingForecast.objects.filter(market_id=market_id, status=StandingForecast.Status.ACTIVE)
        due = list(active.filter(expires_at__lte=now))
        if due:
            _end(forecasts=due, status=StandingForecast.Status.EXPIRED, reason="expired", now=now)
        return len(due)

    return due_by_market_end(market_ids=market_ids, end_due=end_due)
