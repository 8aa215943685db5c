"""Domain errors of accounts and the ledger (one family with config.core.errors)."""

from config.core.errors import DomainError, InvalidInput

__all__ = ["DomainError", "InsufficientFunds", "InvalidInput", "LedgerImbalance"]


class InsufficientFunds(DomainError):
    code = "insufficient_funds"
    http_status = 422


class LedgerImbalance(DomainError):
    code = "ledger_imbalance"
    http_status = 500


class LimitReached(DomainError):
    """An account or address has used up an allowance (e.g. its active API keys)."""

    code = "limit_reached"
    http_status = 422
