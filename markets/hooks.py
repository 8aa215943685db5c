"""Hooks through which other apps hear about markets without markets importing them.

Imports flow forecast -> markets, so markets never calls forecast by name. An app that wants to know
registers a function in its AppConfig.ready() (forecast registers the enqueueing of its scoring);
markets calls every registered function. A settled market is announced after its settlement committed.
"""

from collections.abc import Callable

# Each hook takes the id of a market whose settlement just committed.
MarketSettledHook = Callable[[int], None]

_market_settled_hooks: list[MarketSettledHook] = []


def on_market_settled(hook: MarketSettledHook) -> None:
    """Registers `hook` to run after every committed settlement (once, however often it is registered)."""
    if hook not in _market_settled_hooks:
        _market_settled_hooks.append(hook)


def market_settled(*, market_id: int) -> None:
    """Runs every registered hook for a market whose settlement committed."""
    for hook in _market_settled_hooks:
        hook(market_id)
