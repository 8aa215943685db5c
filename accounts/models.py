from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from accounts.money import CREDIT_PLACES, MAX_DIGITS


class User(AbstractUser):
    """A forecaster (or staff member). Money lives in the user's wallet Account, not here."""

    def __str__(self) -> str:
        return self.username


class MoneyField(models.DecimalField):
    """Credits: NUMERIC(20, 6). Quantizing happens in accounts.money, never here."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", CREDIT_PLACES)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def deconstruct(self) -> tuple[str, str, Sequence[Any], dict[str, Any]]:
        name, _path, args, kwargs = super().deconstruct()
        return name, "accounts.models.MoneyField", args, kwargs


class Account(models.Model):
    """A ledger account. Its balance is a cache of the sum of its entries, kept in the same
    database transaction as the entries by accounts.services.ledger_post."""

    class Kind(models.TextChoices):
        WALLET = "wallet", "User wallet"
        ESCROW = "escrow", "Market escrow"
        HOUSE = "house", "House"
        MINT = "mint", "Mint"
        # Credits set aside until a decision moves them on (challenge bonds): never spendable by anyone.
        HELD = "held", "Held (bonds)"
        # One per user, "reserved:<user id>": credits a user's open buy orders may spend (markets' LimitOrder).
        # Not spendable by trades; orders' fills spend from it and their cancel, expiry or fill releases what is left.
        RESERVED = "reserved", "Reserved for open orders"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    # A stable name: "wallet:<user id>", "escrow:<market id>", "reserved:<user id>", "house", "mint", "held".
    key = models.CharField(max_length=64, unique=True)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="wallet",
    )
    balance = MoneyField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(balance__gte=0) | Q(kind__in=["house", "mint"]),
                name="account_balance_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(kind="wallet", user__isnull=False) | ~Q(kind="wallet"),
                name="account_wallet_has_user",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.balance})"


class LedgerTransaction(models.Model):
    """One movement of money: its entries sum to exactly zero."""

    class Kind(models.TextChoices):
        SIGNUP_GRANT = "signup_grant", "Sign-up grant"
        SUBSIDY = "subsidy", "Market subsidy"
        TRADE = "trade", "Trade"
        PAYOUT = "payout", "Settlement payout"
        REFUND = "refund", "Annulment refund"
        REVERSAL = "reversal", "Settlement reversal"
        ESCROW_RELEASE = "escrow_release", "Escrow release"
        ADJUSTMENT = "adjustment", "Adjustment"
        BOND = "bond", "Challenge bond posted"
        BOND_RETURN = "bond_return", "Challenge bond returned"
        BOND_FORFEIT = "bond_forfeit", "Challenge bond kept by the house"
        VOID = "void", "Late trades voided"
        ORDER_RESERVE = "order_reserve", "Credits reserved for a buy order"
        ORDER_RELEASE = "order_release", "Order reserve released"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    memo = models.CharField(max_length=255, blank=True)
    # What caused it, e.g. "trade:42" or "settlement:7"; unique when set, so a retry cannot post twice.
    reference = models.CharField(max_length=100, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.memo}"


class LedgerEntry(models.Model):
    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="entries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="entries")
    # Positive: money into the account; negative: out of it.
    amount = MoneyField()

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["account", "transaction"])]
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_entry_not_zero")]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.amount}"


class Scope(models.TextChoices):
    """What an API key may do. Each API operation declares the one scope it needs (`required_scope` on the API
    class, checked by accounts.permissions.HasKeyScope); the staff scopes work only for a staff account."""

    READ = "read", "Read prices, markets and your own account"
    TRADE = "trade", "Trade"
    MARKETS = "markets", "Create and manage markets (staff)"
    RESOLVE = "resolve", "Resolve markets (staff)"


STAFF_SCOPES = frozenset({Scope.MARKETS, Scope.RESOLVE})
ALL_SCOPES = tuple(Scope)


class ApiKey(models.Model):
    """A key for the REST API. Only its SHA-256 is stored; the key is shown once at creation."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=12, db_index=True)
    hashed_key = models.CharField(max_length=64, unique=True)
    # The scopes this key grants (Scope values); keys made before scopes existed hold them all (migration 0004).
    scopes = ArrayField(models.CharField(max_length=20, choices=Scope.choices), default=list)
    # After this moment the key authenticates nobody; null: it never expires.
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Written at most once a minute per key (accounts.services.API_KEY_USE_RESOLUTION), not on every request.
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


class UserFollow(models.Model):
    """`follower` sees `followed`'s new trades and comments in their feed."""

    follower = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="following")
    followed = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="followers")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["follower", "followed"], name="user_follow_once"),
            models.CheckConstraint(condition=~Q(follower=models.F("followed")), name="user_follow_not_self"),
        ]
        indexes = [models.Index(fields=["followed", "follower"])]

    def __str__(self) -> str:
        return f"{self.follower_id} follows {self.followed_id}"


class Notification(models.Model):
    """One event told to one user. Generic: the app that fans an event out writes its kind, a payload
    (with the sentence to show, `payload["text"]`) and a link; accounts knows nothing of markets.

    UNIQUE (event_key, recipient) makes every fan-out exactly once: a retried or duplicated task inserts
    with ON CONFLICT DO NOTHING and adds no row.
    """

    class Kind(models.TextChoices):
        MARKET_RESOLVED = "market_resolved", "A market you hold or follow was resolved"
        RESOLUTION_PROPOSED = "resolution_proposed", "A resolution was proposed or challenged"
        MARKET_CLOSING = "market_closing", "A market you hold closes within 24 hours"
        MARKET_MOVED = "market_moved", "A market you follow moved 10 points in a day"
        COMMENT_REPLY = "comment_reply", "A reply to your comment"
        MENTION = "mention", "Someone mentioned you"

    class Email(models.TextChoices):
        # What happens to the notification by e-mail; decided when it is written, from the preferences.
        IMMEDIATE = "immediate", "Send at once"
        DIGEST = "digest", "In the daily digest"
        NONE = "none", "Not by e-mail"
        SENT = "sent", "Sent"

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    # What happened, e.g. "market_resolved:<resolution id>": one notification per event and recipient.
    event_key = models.CharField(max_length=120)
    payload = models.JSONField(default=dict)
    link = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    email = models.CharField(max_length=10, choices=Email.choices, default=Email.NONE)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["event_key", "recipient"], name="notification_once_per_event"),
        ]
        indexes = [
            models.Index(fields=["recipient", "-id"], name="notification_recipient_newest"),
            # The bell's unread count reads this small partial index only.
            models.Index(fields=["recipient"], condition=Q(read_at__isnull=True), name="notification_unread"),
            # The mail tasks find what is waiting to be sent without scanning what was.
            models.Index(
                fields=["email", "recipient"],
                condition=Q(email__in=["immediate", "digest"]),
                name="notification_email_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} for {self.recipient_id} ({self.event_key})"

    @property
    def text(self) -> str:
        return str(self.payload.get("text", self.get_kind_display()))


class NotificationPreference(models.Model):
    """How a user wants one kind of notification by e-mail. No row: the kind's default
    (accounts.notifications.DEFAULT_DELIVERY)."""

    class Delivery(models.TextChoices):
        IMMEDIATELY = "immediately", "Immediately"
        DIGEST = "digest", "Daily digest"
        OFF = "off", "Off"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=Notification.Kind.choices)
    delivery = models.CharField(max_length=12, choices=Delivery.choices)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="notification_preference_once")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.kind}: {self.delivery}"
