from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from accounts.models import Account, LedgerTransaction, MoneyField
from accounts.money import average_price


class Market(models.Model):
    class Kind(models.TextChoices):
        BINARY = "binary", "Binary (yes / no)"
        MULTIPLE = "multiple", "Multiple choice"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"
        RESOLVING = "resolving", "Resolving"
        RESOLVED = "resolved", "Resolved"
        ANNULLED = "annulled", "Annulled"

    slug = models.SlugField(max_length=120, unique=True)
    question = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    resolution_criteria = models.TextField(blank=True)
    category = models.CharField(max_length=50, blank=True, db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT, db_index=True)
    # LMSR liquidity b: the worst-case loss of the maker is b * ln(1 / min initial probability).
    liquidity = models.DecimalField(max_digits=14, decimal_places=4)
    escrow = models.OneToOneField(Account, on_delete=models.PROTECT, related_name="market")
    subsidy = MoneyField(default=0)
    volume = MoneyField(default=0)
    # Users who have held a position in the market (however many outcomes, whatever they hold now): moved by the
    # statement that writes a trade or a fill (markets.services.trade_writes), checked by the reconciliation. It is
    # on the row the trade locks, so the price cache's snapshot after a trade needs no count and no cached copy.
    trader_count = models.PositiveIntegerField(default=0)
    opens_at = models.DateTimeField(null=True, blank=True)
    closes_at = models.DateTimeField(db_index=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # Set while staff have halted trading on an open market (markets.services.lifecycle.market_halt);
    # the reason is shown to traders.
    halted_at = models.DateTimeField(null=True, blank=True)
    halt_reason = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(liquidity__gt=0), name="market_liquidity_positive"),
        ]
        # Staff status alone does not resolve: a resolver holds this (superusers hold every permission).
        permissions = [("resolve_market", "Can propose and record resolutions, and decide challenges")]

    def __str__(self) -> str:
        return self.question

    @property
    def is_binary(self) -> bool:
        return self.kind == self.Kind.BINARY

    @property
    def is_halted(self) -> bool:
        return self.halted_at is not None

    def is_tradeable(self, now: datetime) -> bool:
        """Whether trades (and quotes) are taken at `now`: open, not halted, and before the close time. The clock
        decides, not the close task: a market past its close time refuses trades before the task closes it."""
        return Market.trading_open(status=self.status, closes_at=self.closes_at, now=now, halted=self.is_halted)

    @staticmethod
    def trading_open(*, status: str, closes_at: datetime, now: datetime, halted: bool = False) -> bool:
        """is_tradeable for a market known only by its status, close time and halt (a cached snapshot)."""
        return status == Market.Status.OPEN and closes_at > now and not halted


class MarketEvent(models.Model):
    """The audit row of a staff action on a market (who, when, what, why), public on the market page.

    Written by the services that make the change, in the same transaction: the lifecycle controls
    (markets.services.lifecycle), resolution (markets.services.resolution: a direct resolution or
    re-resolution), proposals (markets.services.proposals: a proposal that became final) and settlement's
    voiding (markets.services.voiding); never edited or deleted. `data` holds what changed, by kind: {"from",
    "to"} for a moved close time, {"liquidity_from", "liquidity_to", "subsidy"} for added liquidity, {"code",
    "label", "probability", "subsidy"} for an added outcome, {"changes": {field: {"before", "after"}}} for a text
    edit (the market's public revision history), {"resolution", "kind", "outcome", "label", "payouts" (a list
    of {"code", "share"}), "known_at", "via", "proposal", "supersedes"} for a resolution (`via` "direct" or
    "proposal"), and
    {"resolution", "trades", "known_at", "escrow_paid"} for voided late trades. The actor of a resolution
    that came from a proposal, and of its voiding, is the resolver who proposed or resolved it."""

    class Kind(models.TextChoices):
        CLOSED = "closed", "Closed early"
        CLOSE_MOVED = "close_moved", "Close time moved"
        HALTED = "halted", "Trading halted"
        RESUMED = "resumed", "Trading resumed"
        LIQUIDITY_ADDED = "liquidity_added", "Liquidity added"
        OUTCOME_ADDED = "outcome_added", "Outcome added"
        EDITED = "edited", "Text edited"
        RESOLVED = "resolved", "Resolved"
        RE_RESOLVED = "re_resolved", "Re-resolved"
        TRADES_VOIDED = "trades_voided", "Late trades voided"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField(blank=True)
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(db_index=True)
    # Not a column: a resolution's event as the market page's log reads it (markets.selectors.events.market_log)
    # carries its Resolution here, for how its settlement went.
    resolution: "Resolution | None" = None

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["market", "-created_at"])]

    def __str__(self) -> str:
        return f"{self.market_id}: {self.get_kind_display()} by {self.actor_id}"

    FIELD_LABELS: ClassVar[dict[str, str]] = {
        "question": "Question",
        "description": "Description",
        "resolution_criteria": "Resolution criteria",
        "category": "Category",
    }

    def revised_fields(self) -> list[tuple[str, str, str]]:
        """(label, before, after) of each field a text edit changed, for the revision history."""
        changes = (self.data or {}).get("changes", {})
        return [
            (self.FIELD_LABELS.get(name, name), change["before"], change["after"]) for name, change in changes.items()
        ]

    def close_times(self) -> tuple[datetime | None, datetime | None]:
        """The close time before and after a move (close_moved)."""
        data = self.data or {}
        moved = [datetime.fromisoformat(data[key]) if data.get(key) else None for key in ("from", "to")]
        return moved[0], moved[1]

    def known_at_time(self) -> datetime | None:
        """When the answer became known (a resolution or a voiding), if it says."""
        known_at = (self.data or {}).get("known_at")
        return datetime.fromisoformat(known_at) if known_at else None

    def resolution_summary(self) -> str:
        """How a resolution event resolved the market, in words: the winner, the split or the annulment."""
        data = self.data or {}
        if data.get("kind") == "annulled":
            what = "annulled: every trader gets back what they put in"
        elif data.get("kind") == "split":
            shares = ", ".join(f"{payout['code']} {payout['share']}" for payout in data.get("payouts") or [])
            what = f"as a probability split ({shares})"
        else:
            what = str(data.get("label") or data.get("outcome") or "")
        return f"{what}, by proposal {data['proposal']}" if data.get("via") == "proposal" else what


class Outcome(models.Model):
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="outcomes")
    code = models.CharField(max_length=32)
    label = models.CharField(max_length=120)
    index = models.PositiveSmallIntegerField()
    initial_probability = models.FloatField()
    # q_i: shares held by traders, always the sum of the positions in this outcome.
    shares_outstanding = MoneyField(default=0)
    # Current LMSR price, cached on every trade for cheap reads.
    probability = models.FloatField()
    # The most eager open limit orders on this outcome (markets.services.orders keeps them under the market's
    # lock): the highest buy limit and the lowest sell limit, null when there is none. A trade reads them with
    # the outcome, so one whose prices cross no resting limit knows it without another statement.
    best_buy_limit = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)
    best_sell_limit = models.DecimalField(max_digits=5, decimal_places=4, null=True, blank=True)

    class Meta:
        ordering = ["market", "index"]
        constraints = [
            models.UniqueConstraint(fields=["market", "code"], name="outcome_code_unique_per_market"),
            models.UniqueConstraint(fields=["market", "index"], name="outcome_index_unique_per_market"),
            models.CheckConstraint(
                condition=Q(initial_probability__gt=0) & Q(initial_probability__lt=1),
                name="outcome_initial_probability_in_open_interval",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label} ({self.code})"


class Position(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="positions")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="positions")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="positions")
    shares = MoneyField(default=0)
    # Net credits put in: paid for buys minus received from sells (negative once in profit).
    net_cost = MoneyField(default=0)
    # Shares the user's open sell orders hold back: a trade can sell only shares - reserved_shares. The default is
    # the database's too, so set-based inserts of positions (seeding, benches) need not name it.
    reserved_shares = MoneyField(default=0, db_default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "outcome"], name="position_unique_per_user_outcome"),
            models.CheckConstraint(condition=Q(shares__gte=0), name="position_shares_non_negative"),
            models.CheckConstraint(
                condition=Q(reserved_shares__gte=0) & Q(reserved_shares__lte=models.F("shares")),
                name="position_reserved_within_shares",
            ),
        ]
        indexes = [models.Index(fields=["market", "user"])]

    def __str__(self) -> str:
        return f"{self.user_id} holds {self.shares} of outcome {self.outcome_id}"


class Trade(models.Model):
    class Side(models.TextChoices):
        BUY = "buy", "Buy"
        SELL = "sell", "Sell"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="trades")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="trades")
    side = models.CharField(max_length=4, choices=Side.choices)
    shares = MoneyField()
    # Credits paid (buy) or received (sell); always positive.
    amount = MoneyField()
    probabilities_before = models.JSONField()
    probabilities_after = models.JSONField()
    ledger_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="trade")
    created_at = models.DateTimeField(db_index=True)
    # Set when a resolution found the answer known before this trade (markets.services.voiding): the trade
    # was undone by compensating entries and counts for nothing. The row stays, as the trader's record.
    voided_at = models.DateTimeField(null=True, blank=True)
    voided_by = models.ForeignKey(
        "Resolution", null=True, blank=True, on_delete=models.PROTECT, related_name="voided_trades"
    )
    # The limit order this trade filled (its marketable part at placement, or a fill a later trade triggered). An
    # order is never deleted (PROTECT): its trades are its owner's record and the ledger's, as the order's own
    # filled_shares and filled_amount sum them (reconciliation: order_filled_equals_trades).
    order = models.ForeignKey(
        "LimitOrder", null=True, blank=True, on_delete=models.PROTECT, related_name="fills", db_index=False
    )
    # A resting order's fill, triggered by someone else's trade (markets.services.fills), as the live stream marks
    # it; false for a trade its owner placed, including an order's marketable part. The database default writes
    # false wherever a statement does not name the column (markets.services.trade_writes).
    fill = models.BooleanField(default=False, db_default=False)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["market", "-created_at"]),
            models.Index(fields=["user", "-created_at"]),
            models.Index(fields=["order"], condition=Q(order__isnull=False), name="trade_order_fills"),
        ]
        constraints = [
            models.CheckConstraint(condition=Q(shares__gt=0), name="trade_shares_positive"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="trade_amount_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.shares} of outcome {self.outcome_id} for {self.amount}"

    @property
    def average_price(self) -> Decimal:
        return average_price(self.amount, self.shares)


class PricePoint(models.Model):
    """The probability vector of a market at a moment (after a trade, or at its opening)."""

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="price_points")
    probabilities = models.JSONField()
    trade = models.OneToOneField(Trade, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["market", "created_at", "id"]
        indexes = [
            models.Index(fields=["market", "created_at"]),
            # The points written since a candle roll-up, and their times, from the index alone
            # (markets.services.candles, markets.selectors.prices).
            models.Index(fields=["market", "id"], include=["created_at"], name="pricepoint_market_id_covering"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} at {self.created_at:%Y-%m-%d %H:%M}: {self.probabilities}"


class IdempotencyKey(models.Model):
    """A trade request that already ran: a retry with the same key and body returns its result."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    trade = models.ForeignKey(Trade, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique_per_user")]

    def __str__(self) -> str:
        return f"{self.user_id}:{self.key}"


class LimitOrder(models.Model):
    """A resting order: buy `outcome` while its price is below `limit_probability`, spending up to `size` credits,
    or sell up to `size` shares while it is above; good till cancelled, or till `expires_at`.

    Written only by markets.services.orders, under the market's lock. While open, what it can still use is
    reserved: a buy's credits sit in the owner's reserved account (a ledger movement, `reserved:<user id>`), a
    sell's shares are counted in the position's `reserved_shares`. Each fill is a Trade of its own (`fills`)
    against the market maker, never beyond the limit; fills, cancel and expiry release what is left."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        FILLED = "filled", "Filled"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="limit_orders")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="limit_orders")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="limit_orders")
    side = models.CharField(max_length=4, choices=Trade.Side.choices)
    limit_probability = models.DecimalField(max_digits=5, decimal_places=4)
    # Credits to spend (buy) or shares to sell (sell), as placed; `remaining` is what is left of it.
    size = MoneyField()
    remaining = MoneyField()
    # What the open order holds back now (0 once it ended): credits in the reserved account, or shares.
    reserved_credits = MoneyField(default=0)
    reserved_shares = MoneyField(default=0)
    # Shares bought or sold and credits paid or received, over every fill.
    filled_shares = MoneyField(default=0)
    filled_amount = MoneyField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    # Why it ended, shown to its owner: "cancelled by you", "market closed", ...
    end_reason = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)
    # The standing forecast that armed this order (markets.services.standing), or null for an order of its own.
    standing_forecast = models.ForeignKey(
        "StandingForecast", null=True, blank=True, on_delete=models.PROTECT, related_name="orders"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(limit_probability__gt=0) & Q(limit_probability__lt=1), name="order_limit_in_open_interval"
            ),
            models.CheckConstraint(condition=Q(size__gt=0), name="order_size_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("size")), name="order_remaining_within_size"
            ),
            models.CheckConstraint(
                condition=Q(reserved_credits__gte=0) & Q(reserved_shares__gte=0), name="order_reserves_non_negative"
            ),
            # An open order reserves exactly what it has left, on its own side; an ended one reserves nothing.
            models.CheckConstraint(
                condition=(
                    Q(status="open", side="buy", reserved_credits=models.F("remaining"), reserved_shares=0)
                    | Q(status="open", side="sell", reserved_shares=models.F("remaining"), reserved_credits=0)
                    | (~Q(status="open") & Q(reserved_credits=0, reserved_shares=0))
                ),
                name="order_reserves_what_remains",
            ),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="order_idempotency_key_unique_per_user",
            ),
        ]
        indexes = [
            # The fill engine's and the order book's read: a market's open orders by outcome, side and limit.
            models.Index(
                fields=["market", "outcome", "side", "limit_probability", "created_at"],
                condition=Q(status="open"),
                name="order_open_book",
            ),
            # The beat task's query: open orders whose time has come.
            models.Index(fields=["expires_at"], condition=Q(status="open"), name="order_open_expiry"),
            models.Index(fields=["user", "-created_at"], name="order_user_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.outcome_id} at {self.limit_probability} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class StandingForecast(models.Model):
    """ "I believe 70%; keep this market within 3 points of it, with up to 200 credits, until 1 March."

    A pair of resting limit orders on `outcome` (markets.services.standing): buy below `belief - band`, sell above
    `belief + band`, re-armed after each of their fills. The buy side spends at most `budget` credits net (`spent`:
    paid by its fills less received by them, never above the budget); the sell side sells only shares its owner
    holds (including what the buy side bought). Its orders carry its `expires_at`; cancelling it, its expiry and
    the market's close, halt or resolution end it and its orders together."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="standing_forecasts")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="standing_forecasts")
    outcome = models.ForeignKey(Outcome, on_delete=models.PROTECT, related_name="standing_forecasts")
    belief = models.DecimalField(max_digits=5, decimal_places=4)
    # Half the band, as a probability: the limits are belief - band and belief + band.
    band = models.DecimalField(max_digits=5, decimal_places=4)
    budget = MoneyField()
    # Credits its fills paid less what they received (negative once its sales brought in more than it paid).
    spent = MoneyField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    end_reason = models.CharField(max_length=100, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(band__gt=0), name="standing_band_positive"),
            # Both limits inside (0, 1).
            models.CheckConstraint(
                condition=Q(belief__gt=models.F("band")) & Q(belief__lt=1 - models.F("band")),
                name="standing_limits_in_open_interval",
            ),
            models.CheckConstraint(condition=Q(budget__gt=0), name="standing_budget_positive"),
            models.CheckConstraint(condition=Q(spent__lte=models.F("budget")), name="standing_spent_within_budget"),
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                condition=Q(idempotency_key__isnull=False),
                name="standing_idempotency_key_unique_per_user",
            ),
        ]
        indexes = [
            models.Index(fields=["expires_at"], condition=Q(status="active"), name="standing_active_expiry"),
            models.Index(fields=["market"], condition=Q(status="active"), name="standing_active_market"),
            models.Index(fields=["user", "-created_at"], name="standing_user_newest"),
        ]

    def __str__(self) -> str:
        return f"{self.outcome_id} at {self.belief} ± {self.band} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE

    @property
    def buy_limit(self) -> Decimal:
        return self.belief - self.band

    @property
    def sell_limit(self) -> Decimal:
        return self.belief + self.band

    @property
    def band_points(self) -> Decimal:
        return self.band * 100


class Resolution(models.Model):
    """How a market resolved, and the audit row of that decision (who, when, what, why).

    Rows are never edited after settlement and never deleted: a re-resolution adds a new current row
    that supersedes the old one, whose settlement is then reversed by compensating ledger entries.
    """

    class Kind(models.TextChoices):
        OUTCOME = "outcome", "One outcome wins"
        SPLIT = "split", "Probability split"
        ANNULLED = "annulled", "Annulled (N/A)"

    class State(models.TextChoices):
        # Recorded; the settlement task has not paid it yet.
        PENDING = "pending", "Awaiting settlement"
        SETTLED = "settled", "Settled"
        # Settled, then undone by a later re-resolution.
        REVERSED = "reversed", "Reversed"
        # Replaced by a later resolution before it was ever settled: nothing was paid.
        SUPERSEDED = "superseded", "Superseded before settlement"

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="resolutions")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Payout per share of each outcome, by outcome index, as decimal strings; null when annulled.
    payouts = models.JSONField(null=True, blank=True)
    outcome = models.ForeignKey(Outcome, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(db_index=True)
    # When the answer became known, if before the close: trades after it are voided before settlement.
    known_at = models.DateTimeField(null=True, blank=True)
    is_current = models.BooleanField(default=True)
    supersedes = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="superseded_by"
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING, db_index=True)
    settled_at = models.DateTimeField(null=True, blank=True)
    # What the settlement moved, kept so a reversal can undo exactly that: paid to traders, and the
    # escrow's remainder returned to the house (negative when the house topped the escrow up).
    paid_total = MoneyField(default=0)
    released_total = MoneyField(default=0)
    reversed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["market"], condition=Q(is_current=True), name="resolution_one_current_per_market"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="resolution_reason_required"),
            models.CheckConstraint(
                condition=(Q(kind="annulled") & Q(payouts__isnull=True))
                | (~Q(kind="annulled") & Q(payouts__isnull=False)),
                name="resolution_payouts_unless_annulled",
            ),
            models.CheckConstraint(
                condition=Q(kind="outcome", outcome__isnull=False) | (~Q(kind="outcome") & Q(outcome__isnull=True)),
                name="resolution_outcome_iff_kind_outcome",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.market_id}: {self.get_kind_display()} ({self.state})"


class Proposal(models.Model):
    """A resolver's proposed resolution, public while its challenge window runs (docs/settlement.md).

    Unchallenged, it becomes the market's Resolution when the window ends (the beat task); challenged, it
    waits for a resolver to decide. The row is also the audit of the proposal (who, when, what, why).
    """

    class State(models.TextChoices):
        OPEN = "open", "Open to challenge"
        CHALLENGED = "challenged", "Challenged, awaiting staff"
        FINAL = "final", "Final"
        # A resolver upheld a challenge: the proposal does not stand.
        OVERTURNED = "overturned", "Overturned by a challenge"
        # Replaced before it became final, by a later proposal or a direct resolution.
        WITHDRAWN = "withdrawn", "Withdrawn"

    LIVE_STATES = (State.OPEN, State.CHALLENGED)

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="proposals")
    kind = models.CharField(max_length=10, choices=Resolution.Kind.choices)
    payouts = models.JSONField(null=True, blank=True)
    outcome = models.ForeignKey(Outcome, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    source_url = models.URLField(max_length=500)
    known_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField()
    challenge_until = models.DateTimeField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    # The resolution it became: one at most (the UNIQUE of a one-to-one), so it is finalized once.
    resolution = models.OneToOneField(
        Resolution, null=True, blank=True, on_delete=models.PROTECT, related_name="proposal"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["market"], condition=Q(state__in=["open", "challenged"]), name="proposal_one_live_per_market"
            ),
            models.CheckConstraint(condition=~Q(reason=""), name="proposal_reason_required"),
            models.CheckConstraint(
                condition=(Q(kind="annulled") & Q(payouts__isnull=True))
                | (~Q(kind="annulled") & Q(payouts__isnull=False)),
                name="proposal_payouts_unless_annulled",
            ),
            models.CheckConstraint(
                condition=Q(kind="outcome", outcome__isnull=False) | (~Q(kind="outcome") & Q(outcome__isnull=True)),
                name="proposal_outcome_iff_kind_outcome",
            ),
            models.CheckConstraint(
                condition=Q(state="final", resolution__isnull=False) | (~Q(state="final") & Q(resolution__isnull=True)),
                name="proposal_resolution_iff_final",
            ),
        ]
        indexes = [
            # The beat task's query: open proposals whose window has ended.
            models.Index(fields=["challenge_until"], condition=Q(state="open"), name="proposal_open_due"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id}: proposed {self.get_kind_display()} ({self.state})"

    @property
    def summary_label(self) -> str:
        """What it proposes, in a word or two: the outcome's label, "Split" or "Annulled"."""
        if self.kind == Resolution.Kind.OUTCOME and self.outcome is not None:
            return self.outcome.label
        return "Split" if self.kind == Resolution.Kind.SPLIT else "Annulled"


class Challenge(models.Model):
    """A trader contests a proposal, with a bond held in the ledger until a resolver decides."""

    class State(models.TextChoices):
        OPEN = "open", "Awaiting staff"
        # The challenge was right: the bond went back to the challenger.
        UPHELD = "upheld", "Upheld, bond returned"
        # The proposal stands: the house kept the bond.
        REJECTED = "rejected", "Rejected, bond kept"

    proposal = models.ForeignKey(Proposal, on_delete=models.PROTECT, related_name="challenges")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="challenges")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="challenges")
    reason = models.TextField()
    bond = MoneyField()
    state = models.CharField(max_length=10, choices=State.choices, default=State.OPEN)
    created_at = models.DateTimeField()
    # The bond's movement into the held account, and its way out (back, or to the house): each once.
    bond_transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="+")
    release_transaction = models.OneToOneField(
        LedgerTransaction, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["proposal", "user"], name="challenge_once_per_proposal_and_user"),
            models.CheckConstraint(condition=Q(bond__gt=0), name="challenge_bond_positive"),
            models.CheckConstraint(condition=~Q(reason=""), name="challenge_reason_required"),
            models.CheckConstraint(
                condition=Q(state="open", release_transaction__isnull=True)
                | (~Q(state="open") & Q(release_transaction__isnull=False)),
                name="challenge_released_iff_decided",
            ),
        ]
        indexes = [models.Index(fields=["market", "state"])]

    def __str__(self) -> str:
        return f"{self.user_id} challenges proposal {self.proposal_id} ({self.state})"


class Payout(models.Model):
    """What one user received from one settlement (zero for a losing trader): paid exactly once.

    Rows are written only by the settlement's INSERT ... SELECT from positions (whose own foreign keys
    hold user and market), under the market's lock. The foreign keys here are not enforced by the
    database because PostgreSQL checks each one row by row: on a 100,000-position market they tripled
    the settlement's time. The invariant that matters, paid exactly once, is the UNIQUE constraint.
    """

    resolution = models.ForeignKey(
        Resolution, on_delete=models.PROTECT, related_name="payout_rows", db_constraint=False
    )
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="payouts", db_constraint=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="payouts", db_constraint=False
    )
    amount = MoneyField()
    created_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "user", "resolution"], name="payout_once_per_settlement"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="payout_amount_non_negative"),
        ]
        indexes = [models.Index(fields=["resolution", "user"])]

    def __str__(self) -> str:
        return f"{self.user_id} <- {self.amount} (resolution {self.resolution_id})"


class ReconciliationRun(models.Model):
    """One run of the reconciliation: staff see in the admin whether the books held."""

    started_at = models.DateTimeField(db_index=True)
    finished_at = models.DateTimeField()
    violation_count = models.PositiveIntegerField()
    # One string per violation, "invariant: subject: detail".
    violations = models.JSONField(default=list)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.started_at:%Y-%m-%d %H:%M}: {self.violation_count} violations"


class PriceCandle(models.Model):
    """One completed bucket of a market's price history, rolled up from its price points.

    Written only by the roll-up service (markets.services.candles); the history read serves completed
    buckets from here and computes the rest from price points, with the same result.
    """

    class Interval(models.TextChoices):
        ONE_MINUTE = "1m", "1 minute"
        FIVE_MINUTES = "5m", "5 minutes"
        ONE_HOUR = "1h", "1 hour"
        ONE_DAY = "1d", "1 day"

    # No index of its own: the unique index below starts with the market.
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="+", db_index=False)
    interval = models.CharField(max_length=2, choices=Interval.choices)
    bucket_start = models.DateTimeField()
    # Per outcome, by outcome index: float8 like the on-the-fly candles, so both give identical values.
    open = ArrayField(models.FloatField())
    high = ArrayField(models.FloatField())
    low = ArrayField(models.FloatField())
    close = ArrayField(models.FloatField())
    point_count = models.PositiveIntegerField()

    class Meta:
        # The unique index (market, interval, bucket_start) is also the index of every range read.
        constraints = [
            models.UniqueConstraint(fields=["market", "interval", "bucket_start"], name="price_candle_unique_bucket")
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.interval} {self.bucket_start:%Y-%m-%d %H:%M}"


class PriceCandleWatermark(models.Model):
    """How far the roll-up of one market and interval has got.

    Every price point with id <= last_point_id is reflected in the PriceCandle rows, except in buckets
    from pending_from on, which were not yet complete when it was seen. Ids, not times, because a trade
    can be dated in the past (demo history); a market's points are written under its row lock, so
    they commit in id order.
    """

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="+", db_index=False)
    interval = models.CharField(max_length=2, choices=PriceCandle.Interval.choices)
    last_point_id = models.BigIntegerField(default=0)
    pending_from = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "interval"], name="price_candle_watermark_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.interval} through point {self.last_point_id}"


class Comment(models.Model):
    """A comment under a market, or a reply to one (one level: a reply's parent is always top-level).

    `body_html` is rendered from `body` and sanitized when written (markets.comments); `position` is what the
    author held in the market at that moment, and `forecast` their current forecast if they attached it.
    """

    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="comments")
    parent = models.ForeignKey("self", null=True, blank=True, on_delete=models.CASCADE, related_name="replies")
    body = models.TextField()
    body_html = models.TextField()
    # [{"outcome": code, "label": label, "shares": "120.000000"}] for every outcome held at writing time.
    position = models.JSONField(default=list, blank=True)
    # [{"outcome": code, "label": label, "probability": p}] by outcome index, right after the author's latest
    # trade in the market, when attached.
    forecast = models.JSONField(null=True, blank=True)
    reply_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(db_index=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)
    hidden_at = models.DateTimeField(null=True, blank=True)
    hidden_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            # Top-level comments of a market, newest first, visible ones only.
            models.Index(
                fields=["market", "-created_at", "-id"],
                condition=Q(parent__isnull=True, deleted_at__isnull=True, hidden_at__isnull=True),
                name="comment_market_visible_newest",
            ),
            models.Index(fields=["author", "-created_at"], name="comment_author_newest"),
        ]
        constraints = [models.CheckConstraint(condition=~Q(body=""), name="comment_body_not_empty")]

    def __str__(self) -> str:
        return f"comment {self.pk} by {self.author_id} on {self.market_id}"

    @property
    def is_visible(self) -> bool:
        return self.deleted_at is None and self.hidden_at is None


class CommentReport(models.Model):
    """A user's report of a comment, in the staff moderation queue until a staff member acts on it."""

    class Outcome(models.TextChoices):
        OPEN = "open", "Open"
        HIDDEN = "hidden", "Comment hidden"
        DISMISSED = "dismissed", "Dismissed"

    comment = models.ForeignKey(Comment, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField()
    state = models.CharField(max_length=10, choices=Outcome.choices, default=Outcome.OPEN)
    handled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["comment", "reporter"], name="comment_report_once")]
        indexes = [models.Index(fields=["created_at"], condition=Q(state="open"), name="comment_report_open")]

    def __str__(self) -> str:
        return f"report of comment {self.comment_id} by {self.reporter_id} ({self.state})"


class MarketFollow(models.Model):
    """An explicit follow (`following` true) or unfollow (false) of a market.

    Trading a market follows it without a row: the followers of a market are its position holders and the
    users with a true row, less those with a false row (markets.selectors.follows). So a trade adds nothing
    to its hot path, and an unfollow of a traded market is remembered.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="follows")
    following = models.BooleanField()
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "market"], name="market_follow_once")]
        indexes = [models.Index(fields=["market", "user"], include=["following"], name="market_follow_market")]

    def __str__(self) -> str:
        return f"{self.user_id} {'follows' if self.following else 'unfollowed'} {self.market_id}"
