"""The trade request: what a trader asks for, built once at the edge (the API serializer, the website form)
from input those already parsed, and passed as it is to pricing, quotes and the trade service.

Building one checks everything that does not depend on the market (exactly one quantity, ranges, bounds,
the idempotency key), so a TradeRequest that exists is well-formed; what depends on the market (the outcome,
the direction of a target, the size after rounding) is pricing's to check (markets.pricing.price_trade).
"""

import hashlib
import json
from dataclasses import dataclass
from decimal import Decimal

from markets.errors import InvalidInput
from markets.models import Trade

# Bounds that keep every number inside NUMERIC(20, 6) and every float exact to the quantum.
MAX_SHARES = Decimal("1000000000")
MAX_AMOUNT = Decimal("1000000000")
# The maker's prices never reach 0 or 1; a target this close to either would cost without bound.
MIN_PROBABILITY = Decimal("0.0001")
MAX_PROBABILITY = Decimal("0.9999")
MAX_IDEMPOTENCY_KEY = 255


def _check_positive(value: Decimal, *, field: str, maximum: Decimal, zero_allowed: bool = False) -> None:
    if not value.is_finite():
        raise InvalidInput("Enter a finite number.", field=field)
    if value < 0 or (value == 0 and not zero_allowed):
        raise InvalidInput("Enter a number greater than zero.", field=field)
    if value > maximum:
        raise InvalidInput(f"Enter a number no larger than {maximum:,}.", field=field)


def canonical(value: Decimal | None) -> str | None:
    """One spelling per number, so 10, 10.0 and 1E+1 fingerprint alike."""
    return None if value is None else format(value.normalize(), "f")


def request_fingerprint(payload: dict[str, object]) -> str:
    """A stable hash of what a request asks (numbers spelt by `canonical`), to tell a retry under an
    Idempotency-Key from a new request. Trades, orders and standing forecasts all hash this way."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def idempotency_key_check(key: str | None) -> None:
    """Refuses an Idempotency-Key that is empty or longer than the column holds (None: no key, nothing to check)."""
    if key is not None and not 0 < len(key) <= MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"An Idempotency-Key has 1 to {MAX_IDEMPOTENCY_KEY} characters.", field="Idempotency-Key")


@dataclass(frozen=True)
class TradeRequest:
    """A buy or sell of one outcome by exactly one of shares, amount (credits) or target probability.

    `side` None makes it a forecast: `probability` is the trader's forecast for `outcome`, and pricing
    trades whichever way moves the price there (on a two-outcome market a forecast below the price buys
    the other outcome; on a larger one it sells this one). The bounds refuse the trade if the price moved:
    `max_cost` applies when it turns out a buy, `min_proceeds` when it turns out a sale.
    """

    outcome: str
    side: str | None
    shares: Decimal | None = None
    amount: Decimal | None = None
    probability: Decimal | None = None
    max_cost: Decimal | None = None
    min_proceeds: Decimal | None = None
    idempotency_key: str | None = None

    def __post_init__(self) -> None:
        if self.side is not None and self.side not in Trade.Side.values:
            raise InvalidInput("Choose buy or sell.", field="side")
        given = [name for name in ("shares", "amount", "probability") if getattr(self, name) is not None]
        if len(given) != 1:
            raise InvalidInput("Give exactly one of shares, amount or probability.", field="shares")
        if self.side is None and self.probability is None:
            raise InvalidInput("A forecast is a probability: give probability, not shares or amount.", field="side")
        if self.shares is not None:
            _check_positive(self.shares, field="shares", maximum=MAX_SHARES)
        if self.amount is not None:
            _check_positive(self.amount, field="amount", maximum=MAX_AMOUNT)
        if self.probability is not None:
            if not self.probability.is_finite() or not 0 < self.probability < 1:
                raise InvalidInput("Enter a probability strictly between 0 and 1.", field="probability")
            if not MIN_PROBABILITY <= self.probability <= MAX_PROBABILITY:
                raise InvalidInput("Enter a probability between 0.01% and 99.99%.", field="probability")
        if self.max_cost is not None:
            _check_positive(self.max_cost, field="max_cost", maximum=MAX_AMOUNT)
        if self.min_proceeds is not None:
            _check_positive(self.min_proceeds, field="min_proceeds", maximum=MAX_AMOUNT, zero_allowed=True)
        idempotency_key_check(self.idempotency_key)

    @property
    def is_forecast(self) -> bool:
        return self.side is None

    @property
    def quantity_field(self) -> str:
        """The name of the one quantity given: shares, amount or probability."""
        return "shares" if self.shares is not None else "amount" if self.amount is not None else "probability"

    def fingerprint(self, *, market_id: int) -> str:
        """A stable hash of what is asked of this market (not of the key), to tell a retry from a new request."""
        payload = {
            "market": market_id,
            "outcome": self.outcome,
            "side": self.side,
            "shares": canonical(self.shares),
            "amount": canonical(self.amount),
            "probability": canonical(self.probability),
            "max_cost": canonical(self.max_cost),
            "min_proceeds": canonical(self.min_proceeds),
        }
        return request_fingerprint(payload)
