"""Writes of the markets app. Import services from here: `from markets.services import trade_execute`."""

from markets.services.lifecycle import market_close, market_create, market_open, markets_close_due
from markets.services.reconciliation import markets_reconcile
from markets.services.trading import TradeResult, after_trade_commit, request_fingerprint, trade_execute, trade_quote

__all__ = [
    "TradeResult",
    "after_trade_commit",
    "market_close",
    "market_create",
    "market_open",
    "markets_close_due",
    "markets_reconcile",
    "request_fingerprint",
    "trade_execute",
    "trade_quote",
]
