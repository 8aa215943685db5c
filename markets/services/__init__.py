"""Writes of the markets app. Import services from here: `from markets.services import trade_execute`."""

from markets.services.candles import candles_roll_up
from markets.services.changes import market_change_callbacks, market_changed
from markets.services.lifecycle import (
    market_close,
    market_create,
    market_halt,
    market_liquidity_add,
    market_open,
    market_outcome_add,
    market_reschedule,
    market_resume,
    market_update,
    markets_close_due,
)
from markets.services.proposals import (
    challenge_create,
    challenge_decide,
    proposal_create,
    proposals_finalize_due,
)
from markets.services.reconciliation import markets_reconcile, reconciliation_run
from markets.services.resolution import market_resolve, settlement_enqueue, user_is_resolver
from markets.services.settlement import SettlementResult, market_settle, markets_stuck_in_resolving
from markets.services.trading import TradeResult, market_quote, trade_execute

__all__ = [
    "SettlementResult",
    "TradeResult",
    "candles_roll_up",
    "challenge_create",
    "challenge_decide",
    "market_change_callbacks",
    "market_changed",
    "market_close",
    "market_create",
    "market_halt",
    "market_liquidity_add",
    "market_open",
    "market_outcome_add",
    "market_quote",
    "market_reschedule",
    "market_resolve",
    "market_resume",
    "market_settle",
    "market_update",
    "markets_close_due",
    "markets_reconcile",
    "markets_stuck_in_resolving",
    "proposal_create",
    "proposals_finalize_due",
    "reconciliation_run",
    "settlement_enqueue",
    "trade_execute",
    "user_is_resolver",
]
