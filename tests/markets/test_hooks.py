"""`market settled` reaches forecast through markets.hooks, registered by ForecastConfig.ready()."""

from decimal import Decimal
from types import SimpleNamespace

from forecast import tasks as forecast_tasks
from markets import hooks
from markets import tasks as markets_tasks


def test_forecast_scores_every_market_announced_as_settled(monkeypatch):
    enqueued: list[int] = []
    monkeypatch.setattr(forecast_tasks.market_score, "delay", enqueued.append)

    hooks.market_settled(market_id=42)

    assert enqueued == [42]


def test_registering_a_hook_twice_runs_it_once(monkeypatch):
    monkeypatch.setattr(hooks, "_market_settled_hooks", [])
    calls: list[int] = []
    hooks.on_market_settled(calls.append)
    hooks.on_market_settled(calls.append)

    hooks.market_settled(market_id=7)

    assert calls == [7]


def test_the_settle_task_announces_a_committed_settlement_only(monkeypatch):
    announced: list[int] = []
    monkeypatch.setattr(hooks, "_market_settled_hooks", [announced.append])
    result = SimpleNamespace(resolution_id=9, payout_count=2, paid_total=Decimal(5), released_total=Decimal(1))
    monkeypatch.setattr(markets_tasks.services, "market_settle", lambda market_id: result if market_id == 3 else None)

    assert markets_tasks.market_settle(3) is True
    assert markets_tasks.market_settle(4) is False

    assert announced == [3]
