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

from django.db import connection, transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import CREDIT_QUANTUM, ZERO
from accounts.services import PostingRow, ledger_post_many_ctes, ledger_post_many_params
from markets.errors import IdempotencyConflict, InsufficientFunds, InvalidInput, StandingNotActive
from markets.locks import market_lock
from markets.models import LimitOrder, Market, Position, StandingForecast, Trade
from markets.services.changes import market_changed
from markets.services.fills import ORDER, POSITION, Fill
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
from markets.services.trade_writes import table_name
from markets.services.trading import trade_lock_and_read, trading_check
from markets.trade_request import MAX_AMOUNT, MAX_PROBABILITY, MIN_PROBABILITY, canonical, request_fingerprint

# The band is given in percentage points (3 means three points either side), to a hundredth of a point.
BAND_POINTS_QUANTUM = Decimal("0.01")
REARMED = "re-armed"
ACCOUNT = table_name(Account)
STANDING = table_name(StandingForecast)


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


# The re-arming's read, after the pass's write: what the fills spent is added to each standing forecast's `spent`;
# then, for the active, unexpired ones among them, their owners' wallets are locked in id order (after the market,
# as every lock here) and read with each one's open orders, its owner's free shares of its outcome and reserved
# account (opened here if its owner never had one: the buy side may need it for the first time).
_REARM_READ_SQL = f"""
    WITH moved AS (
        UPDATE {STANDING} AS row SET spent = row.spent + moved.amount
        FROM unnest(%(forecasts)s::bigint[], %(amounts)s::numeric[]) AS moved(id, amount)
        WHERE row.id = moved.id
        RETURNING row.*
    ),
    armed AS MATERIALIZED (
        SELECT * FROM moved
        WHERE moved.status = 'active' AND (moved.expires_at IS NULL OR moved.expires_at > %(now)s)
    ),
    wallet AS MATERIALIZED (
        SELECT account.id, account.key, account.balance FROM {ACCOUNT} AS account
        WHERE account.key IN (SELECT 'wallet:' || armed.user_id FROM armed)
        ORDER BY account.id FOR UPDATE
    ),
    reserved_opened AS (
        INSERT INTO {ACCOUNT} (kind, key, balance, created_at)
        SELECT DISTINCT 'reserved', 'reserved:' || armed.user_id, 0::numeric, %(now)s::timestamptz FROM armed
        WHERE NOT EXISTS (SELECT FROM {ACCOUNT} AS account WHERE account.key = 'reserved:' || armed.user_id)
        ON CONFLICT (key) DO NOTHING
        RETURNING id, key
    )
    SELECT armed.id, armed.user_id, armed.outcome_id, armed.belief - armed.band, armed.belief + armed.band,
           armed.budget - armed.spent, armed.expires_at, wallet.id, wallet.balance,
           coalesce(reserved.id, (SELECT opened.id FROM reserved_opened AS opened
                                  WHERE opened.key = 'reserved:' || armed.user_id)),
           buy.id, buy.remaining, sell.id, sell.remaining,
           coalesce(held.shares - held.reserved_shares, 0)
    FROM armed
    JOIN wallet ON wallet.key = 'wallet:' || armed.user_id
    LEFT JOIN {ACCOUNT} AS reserved ON reserved.key = 'reserved:' || armed.user_id
    LEFT JOIN {ORDER} AS buy ON buy.standing_forecast_id = armed.id AND buy.status = 'open' AND buy.side = 'buy'
    LEFT JOIN {ORDER} AS sell ON sell.standing_forecast_id = armed.id AND sell.status = 'open' AND sell.side = 'sell'
    LEFT JOIN {POSITION} AS held ON held.user_id = armed.user_id AND held.outcome_id = armed.outcome_id
    ORDER BY armed.id
"""  # noqa: S608  # nosec B608 - model names only

# Each new buy order's reserve is referenced "order:<id>", its id drawn in the statement that writes both.
_ORDER_REFERENCE = "(SELECT 'order:' || armed.id FROM armed WHERE armed.posting = ledger_transaction.n)"

# The re-arming's write: the sides that grow end (cancelled, "re-armed") and new orders rest for all of each; the
# credits move through the ledger (each old buy's release and each new buy's reserve, "order:<id>", a transaction
# of its own as before) and the positions' reserved shares by their net change.
_REARM_WRITE_SQL = f"""
    WITH armed AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('{LimitOrder._meta.db_table}', 'id')::regclass) AS id, armed.*
        FROM unnest(%(armed_forecasts)s::bigint[], %(armed_users)s::bigint[], %(armed_outcomes)s::bigint[],
                    %(armed_sides)s::varchar[], %(armed_limits)s::numeric[], %(armed_sizes)s::numeric[],
                    %(armed_expiries)s::timestamptz[], %(armed_postings)s::bigint[])
            WITH ORDINALITY AS armed(forecast_id, user_id, outcome_id, side, limit_probability, size, expires_at,
                                     posting, n)
    ),
    {ledger_post_many_ctes(reference=_ORDER_REFERENCE)},
    ended AS (
        UPDATE {ORDER} AS row SET status = 'cancelled', reserved_credits = 0, reserved_shares = 0,
            end_reason = %(reason)s, ended_at = %(now)s
        WHERE row.id = ANY(%(ended)s::bigint[]) AND row.status = 'open'
    ),
    opened AS (
        INSERT INTO {ORDER} (id, user_id, market_id, outcome_id, side, limit_probability, size, remaining,
                             reserved_credits, reserved_shares, filled_shares, filled_amount, status, end_reason,
                             expires_at, created_at, idempotency_key, fingerprint, standing_forecast_id)
        SELECT armed.id, armed.user_id, %(market)s, armed.outcome_id, armed.side, armed.limit_probability, armed.size,
               armed.size, CASE WHEN armed.side = 'buy' THEN armed.size ELSE 0 END,
               CASE WHEN armed.side = 'sell' THEN armed.size ELSE 0 END, 0, 0, 'open', '', armed.expires_at,
               %(now)s, NULL, '', armed.forecast_id
        FROM armed
    ),
    held AS (
        UPDATE {POSITION} AS row SET reserved_shares = row.reserved_shares + change.shares
        FROM unnest(%(held_users)s::bigint[], %(held_outcomes)s::bigint[], %(held_shares)s::numeric[])
            AS change(user_id, outcome_id, shares)
        WHERE row.user_id = change.user_id AND row.outcome_id = change.outcome_id
    )
    SELECT count(*) FROM armed
"""  # noqa: S608  # nosec B608 - model names only


@dataclass
class _Armed:
    """A standing forecast being re-armed, as the re-arming's read found it."""

    forecast_id: int
    user_id: int
    outcome_id: int
    buy_limit: Decimal
    sell_limit: Decimal
    # What its buy side may still spend: budget less spent.
    unspent: Decimal
    expires_at: datetime | None
    wallet_id: int
    wallet_balance: Decimal
    reserved_id: int | None
    buy_id: int | None
    buy_held: Decimal | None
    sell_id: int | None
    sell_held: Decimal | None
    free_shares: Decimal


def standing_fills_rearm(market: Market, fills: list[Fill], now: datetime) -> bool:
    """The fill callback (markets.services.fills.fill_callbacks): counts what the pass's fills of standing
    forecasts' orders spent or brought in, and re-arms those standing forecasts, in two statements however many
    (a read that locks their owners' wallets, and a write); whether it opened or ended orders. Under the market's
    lock, in the triggering trade's transaction; it never trades (a re-armed order the price already crosses fills
    on the next trade by someone else)."""
    spent: dict[int, Decimal] = defaultdict(Decimal)
    for fill in fills:
        forecast_id = fill.order.standing_forecast_id
        if forecast_id is not None:
            spent[forecast_id] += fill.quote.amount if fill.quote.side == Trade.Side.BUY else -fill.quote.amount
    if not spent:
        return False
    with connection.cursor() as cursor:
        cursor.execute(_REARM_READ_SQL, {"forecasts": list(spent), "amounts": list(spent.values()), "now": now})
        armed = [_Armed(*row) for row in cursor.fetchall()]
    return _rearm_write(market=market, armed=armed, now=now)


def _rearm_write(*, market: Market, armed: list[_Armed], now: datetime) -> bool:
    """Tops up each side to what its standing forecast may now use, one forecast after another in id order (what
    one takes from its owner's wallet or free shares, the next one's does not have): the buy side to its budget
    less what it spent, within the wallet; the sell side to the free shares. A side that grows is replaced by a new
    order for all of it (the old one ends "re-armed"), so the added size queues behind orders already resting at
    that limit. Written in one statement; whether anything changed."""
    balances = {row.user_id: row.wallet_balance for row in armed}
    free = {(row.user_id, row.outcome_id): row.free_shares for row in armed}
    postings: list[PostingRow] = []
    ended: list[int] = []
    opened: list[tuple[_Armed, str, Decimal, int | None]] = []
    held_changes: dict[tuple[int, int], Decimal] = defaultdict(Decimal)
    for row in armed:
        buy_held = row.buy_held or ZERO
        buy_target = max(min(row.unspent, balances[row.user_id] + buy_held), ZERO)
        if buy_target > buy_held:
            reserved_id = row.reserved_id or reserved_account(user_id=row.user_id).pk
            if row.buy_id is not None:
                ended.append(row.buy_id)
            if buy_held > ZERO:
                postings.append(
                    PostingRow(
                        kind=LedgerTransaction.Kind.ORDER_RELEASE,
                        entries=[(reserved_id, -buy_held), (row.wallet_id, buy_held)],
                        memo=f"order {row.buy_id} cancelled ({REARMED}) in market {market.pk}",
                    )
                )
            postings.append(
                PostingRow(
                    kind=LedgerTransaction.Kind.ORDER_RESERVE,
                    entries=[(row.wallet_id, -buy_target), (reserved_id, buy_target)],
                    memo=f"standing forecast {row.forecast_id}: buy below {row.buy_limit}",
                )
            )
            balances[row.user_id] += buy_held - buy_target
            opened.append((row, Trade.Side.BUY, buy_target, len(postings)))
        sell_held = row.sell_held or ZERO
        sell_target = free[(row.user_id, row.outcome_id)] + sell_held
        if sell_target > sell_held:
            if row.sell_id is not None:
                ended.append(row.sell_id)
            held_changes[(row.user_id, row.outcome_id)] += sell_target - sell_held
            free[(row.user_id, row.outcome_id)] = ZERO
            opened.append((row, Trade.Side.SELL, sell_target, None))
    if not opened:
        return False
    params = ledger_post_many_params(postings=postings, at=now) | {
        "market": market.pk,
        "now": now,
        "reason": REARMED,
        "ended": ended,
        "armed_forecasts": [row.forecast_id for row, _side, _size, _posting in opened],
        "armed_users": [row.user_id for row, _side, _size, _posting in opened],
        "armed_outcomes": [row.outcome_id for row, _side, _size, _posting in opened],
        "armed_sides": [side for _row, side, _size, _posting in opened],
        "armed_limits": [
            row.buy_limit if side == Trade.Side.BUY else row.sell_limit for row, side, _size, _posting in opened
        ],
        "armed_sizes": [size for _row, _side, size, _posting in opened],
        "armed_expiries": [row.expires_at for row, _side, _size, _posting in opened],
        "armed_postings": [posting for _row, _side, _size, posting in opened],
        "held_users": [user_id for user_id, _outcome_id in held_changes],
        "held_outcomes": [outcome_id for _user_id, outcome_id in held_changes],
        "held_shares": list(held_changes.values()),
    }
    with connection.cursor() as cursor:
        cursor.execute(_REARM_WRITE_SQL, params)
    return True


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
