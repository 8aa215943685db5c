"""The one family of domain errors. The API turns them into one JSON error shape
(code, message, fields) and the website into form errors.

The base of the family lives here, in the bottom layer, so the API's exception handler can know it
without importing an app; each app adds its own errors in its `errors` module (accounts.errors,
markets.errors)."""

from typing import ClassVar


class DomainError(Exception):
    """A business rule refused an operation; nothing was written."""

    code: ClassVar[str] = "domain_error"
    http_status: ClassVar[int] = 422

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    @property
    def fields(self) -> dict[str, list[str]]:
        return {self.field: [self.message]} if self.field else {}


class InvalidInput(DomainError):
    code = "invalid"
    http_status = 400
