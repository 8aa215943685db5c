"""Typed errors for the API's one error shape: `{"error": {"code", "message", "fields"}}` with an HTTP status.

Every error response becomes an `ApiError` subclass chosen by its `code` where the code has a class of its own
(a read-only key trying to trade: `InsufficientScope`, a 403), else by its status (`PermissionDenied` for any
other 403). Catch the broad class or the precise one: `InsufficientScope` is a `PermissionDenied` is an
`ApiError` is a `ForecastleError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx


class ForecastleError(Exception):
    """Anything this client raises on purpose."""


class ConnectionFailed(ForecastleError):
    """The server could not be reached (or the connection broke) even after the retries."""


class StreamError(ForecastleError):
    """The stream sent something this client cannot read."""


class ApiError(ForecastleError):
    """The server answered with an error in the API's error shape."""

    status: int
    code: str
    message: str
    # Per field (or header) name, what is wrong with it: {"as_of": ["Give a past time..."]}.
    fields: dict[str, list[str]]

    def __init__(
        self, *, status: int, code: str, message: str, fields: Mapping[str, list[str]], response: httpx.Response
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.fields = dict(fields)
        self.response = response


class InvalidInput(ApiError):
    """400: the input is invalid; `fields` names what."""


class AuthenticationFailed(ApiError):
    """401: the API key is missing, unknown, expired or revoked."""


class PermissionDenied(ApiError):
    """403: not allowed (not staff, not a resolver, ...)."""


class InsufficientScope(PermissionDenied):
    """403 insufficient_scope: the key lacks the operation's scope (a read-only key cannot trade)."""


class NotFound(ApiError):
    """404: no such market (a draft is unknown to the API), order or page."""


class Conflict(ApiError):
    """409: the request conflicts with the market's state."""


class PriceMoved(Conflict):
    """409 price_moved: the price moved past your max_cost / min_proceeds; nothing was traded."""


class MarketHalted(Conflict):
    """409 market_halted: staff halted trading; the message carries their reason."""


class IdempotencyConflict(Conflict):
    """409 idempotency_conflict: the Idempotency-Key was used for another request."""


class OrderNotOpen(Conflict):
    """409 order_not_open: the order already ended (filled, cancelled or expired)."""


class BusinessRuleError(ApiError):
    """422: a business rule refused it."""


class InsufficientFunds(BusinessRuleError):
    """422 insufficient_funds."""


class InsufficientShares(BusinessRuleError):
    """422 insufficient_shares."""


class MarketClosed(BusinessRuleError):
    """422 market_closed: the market is (or, with as_of, was) closed for trading."""


class RateLimited(ApiError):
    """429: too many requests (after the client's own retries); wait `retry_after` seconds."""

    @property
    def retry_after(self) -> float | None:
        return retry_after(self.response)


class ServerError(ApiError):
    """5xx (after the client's own retries)."""


BY_CODE: dict[str, type[ApiError]] = {
    "insufficient_scope": InsufficientScope,
    "price_moved": PriceMoved,
    "market_halted": MarketHalted,
    "idempotency_conflict": IdempotencyConflict,
    "order_not_open": OrderNotOpen,
    "insufficient_funds": InsufficientFunds,
    "insufficient_shares": InsufficientShares,
    "market_closed": MarketClosed,
}
BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidInput,
    401: AuthenticationFailed,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    422: BusinessRuleError,
    429: RateLimited,
}


def retry_after(response: httpx.Response) -> float | None:
    """The response's Retry-After in seconds (the API sends seconds), or None."""
    value = response.headers.get("Retry-After")
    try:
        return max(float(value), 0.0) if value is not None else None
    except ValueError:
        return None


def error_from(response: httpx.Response) -> ApiError:
    """The typed error for an error response (one that is not in the error shape still gets its status's class)."""
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"code": f"http_{response.status_code}", "message": response.reason_phrase or "error", "fields": {}}
    code = str(error.get("code", ""))
    fields = error.get("fields") or {}
    kind = BY_CODE.get(code) or BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else ApiError
    return kind(
        status=response.status_code,
        code=code,
        message=str(error.get("message", "")),
        fields={str(name): [str(item) for item in items] for name, items in fields.items()},
        response=response,
    )
