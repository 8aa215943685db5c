"""The one place where credits are quantized. Rounding is always in the house's favour:
what a user pays is rounded up, what a user receives is rounded down. Valuations that are not
payments (a position's value, an average price) round down too, the same on every page and endpoint."""

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation

CREDIT_PLACES = 6
CREDIT_QUANTUM = Decimal(1).scaleb(-CREDIT_PLACES)
# Ledger columns are NUMERIC(20, 6): 14 integer digits.
MAX_DIGITS = 20
ZERO = Decimal(0)


def _decimal(value: Decimal | float | int | str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as error:
        raise ValueError(f"not a number: {value!r}") from error
    if not number.is_finite():
        raise ValueError(f"not a finite number: {value!r}")
    return number


def credits(value: Decimal | float | int | str) -> Decimal:
    """An exact amount (already on the quantum, e.g. a setting); half-even if it is not."""
    return _decimal(value).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_EVEN)


def credits_to_pay(value: Decimal | float | int | str) -> Decimal:
    """What a user (or the house's counterparty) pays: rounded up."""
    return _decimal(value).quantize(CREDIT_QUANTUM, rounding=ROUND_CEILING)


def credits_to_receive(value: Decimal | float | int | str) -> Decimal:
    """What a user receives: rounded down."""
    return _decimal(value).quantize(CREDIT_QUANTUM, rounding=ROUND_FLOOR)


def shares_down(value: Decimal | float | int | str) -> Decimal:
    """Shares a user gets: rounded toward zero on the quantum."""
    return _decimal(value).quantize(CREDIT_QUANTUM, rounding=ROUND_FLOOR)


def shares_up(value: Decimal | float | int | str) -> Decimal:
    return _decimal(value).quantize(CREDIT_QUANTUM, rounding=ROUND_CEILING)


def position_value(shares: Decimal, probability: float) -> Decimal:
    """What `shares` would fetch at `probability` (a share pays 1 if its outcome wins), rounded down as the
    ledger rounds what a user receives. The one valuation the website and the API both show."""
    return credits_to_receive(shares * Decimal(repr(probability)))


def average_price(amount: Decimal, shares: Decimal) -> Decimal:
    """Credits per share, rounded down like every valuation; zero when there are no shares."""
    return credits_to_receive(amount / shares) if shares else ZERO
