"""Domain errors of trading and market lifecycle (one family with accounts.errors)."""

from accounts.errors import DomainError, InsufficientFunds, InvalidInput

__all__ = [
    "DomainError",
    "EditWindowClosed",
    "IdempotencyConflict",
    "InsufficientFunds",
    "InsufficientShares",
    "InvalidInput",
    "MarketClosed",
    "MarketHalted",
    "MarketStateError",
    "NoForecast",
    "NotATrader",
    "NotAuthor",
    "OrderNotOpen",
    "PriceMoved",
    "StandingForecastOrder",
    "StandingNotActive",
]


class MarketClosed(DomainError):
    code = "market_closed"
    http_status = 422


class MarketHalted(DomainError):
    """Staff halted trading on this market for a while; the message carries their reason."""

    code = "market_halted"
    http_status = 409


class MarketStateError(DomainError):
    """The market is not in a state that allows this operation."""

    code = "invalid_market_state"
    http_status = 409


class InsufficientShares(DomainError):
    code = "insufficient_shares"
    http_status = 422


class PriceMoved(DomainError):
    """The price moved past the bound the trader gave; nothing was traded."""

    code = "price_moved"
    http_status = 409


class IdempotencyConflict(DomainError):
    """The idempotency key was already used for a different request."""

    code = "idempotency_conflict"
    http_status = 409


class NotAuthor(DomainError):
    """Only a comment's author may edit or delete it."""

    code = "not_author"
    http_status = 403


class EditWindowClosed(DomainError):
    code = "edit_window_closed"
    http_status = 422


class NoForecast(DomainError):
    """A forecast was to be attached, but the author has not traded the market."""

    code = "no_forecast"
    http_status = 422


class NotATrader(DomainError):
    """Only a trader of the market may do this (challenge its proposal)."""

    code = "not_a_trader"
    http_status = 403


class OrderNotOpen(DomainError):
    """The limit order already ended (filled, cancelled or expired)."""

    code = "order_not_open"
    http_status = 409


class StandingNotActive(DomainError):
    """The standing forecast already ended (cancelled, expired, or its market stopped trading)."""

    code = "standing_not_active"
    http_status = 409


class StandingForecastOrder(DomainError):
    """The limit order belongs to a standing forecast: it ends with the standing forecast, not on its own."""

    code = "standing_forecast_order"
    http_status = 409
