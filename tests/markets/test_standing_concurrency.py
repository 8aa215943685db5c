"""Real threads on one market against PostgreSQL: several standing forecasts re-arming while many traders trade
and their owners restate them. Nothing lost, nothing spent twice, no fill past its limit, no budget overspent."""

import random
import threading
import traceback
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from functools import partial

import pytest
from django.db import connection
from django.utils import timezone

from accounts.models import User
from markets.errors import InsufficientFunds, InsufficientShares, InvalidInput, StandingNotActive
from markets.models import Market, StandingForecast, Trade
from markets.services import trade_execute
from markets.services.standing import StandingRequest, standing_forecast_cancel, standing_forecast_create
from tests.factories import trade_request
from tests.markets.test_orders_concurrency import _assert_nothing_lost

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

EXPECTED = (InsufficientFunds, InsufficientShares, InvalidInput, StandingNotActive)
TRADES_PER_TRADER = 15
RESTATEMENTS = 4


def _stand(user: User, market: Market, belief: str, budget: str = "150") -> StandingForecast:
    request = StandingRequest(outcome="YES", belief=Decimal(belief), band_points=Decimal("2"), budget=Decimal(budget))
    return standing_forecast_create(user=user, market=market, request=request).forecast


def _in_thread(run: Callable[[], None], barrier: threading.Barrier, problems: list[str]) -> None:
    try:
        barrier.wait(timeout=30)
        run()
    except Exception:
        problems.append(traceback.format_exc())
    finally:
        connection.close()


def test_standing_forecasts_and_many_traders_on_one_market(make_user, make_market):
    market = make_market(slug="hot-standing", liquidity=200, closes_at=timezone.now() + timedelta(days=1))
    owners = [make_user(f"stander{index}") for index in range(4)]
    traders = [make_user(f"mover{index}") for index in range(8)]
    # Each owner holds Yes first, so both sides of their standing forecasts are armed.
    for owner in owners:
        trade_execute(user=owner, market=market, request=trade_request("YES", "buy", amount="60"))
        trade_execute(user=owner, market=market, request=trade_request("NO", "buy", amount="60"))
    beliefs = ["0.35", "0.45", "0.55", "0.65"]
    for owner, belief in zip(owners, beliefs, strict=True):
        _stand(owner, market, belief)

    def trade(seed: int, user: User) -> None:
        rng = random.Random(seed)
        for _ in range(TRADES_PER_TRADER):
            code = rng.choice(["YES", "NO"])
            try:
                if rng.random() < 0.75:
                    amount = f"{rng.uniform(1, 40):.2f}"
                    trade_execute(user=user, market=market, request=trade_request(code, "buy", amount=amount))
                else:
                    shares = f"{rng.uniform(1, 20):.3f}"
                    trade_execute(user=user, market=market, request=trade_request(code, "sell", shares=shares))
            except EXPECTED:
                continue

    def restate(seed: int, owner: User, belief: str) -> None:
        rng = random.Random(seed)
        for _ in range(RESTATEMENTS):
            current = StandingForecast.objects.filter(user=owner, status="active").values_list("pk", flat=True)
            try:
                for forecast_id in current:
                    standing_forecast_cancel(user=owner, forecast_id=forecast_id)
                shifted = Decimal(belief) + Decimal(rng.choice(["-0.05", "0", "0.05"]))
                _stand(owner, market, str(shifted), budget=f"{rng.uniform(20, 150):.2f}")
            except EXPECTED:
                continue

    problems: list[str] = []
    jobs: list[Callable[[], None]] = [partial(trade, index, user) for index, user in enumerate(traders)]
    jobs += [
        partial(restate, 100 + index, owner, belief)
        for index, (owner, belief) in enumerate(zip(owners[:2], beliefs[:2], strict=True))
    ]
    barrier = threading.Barrier(len(jobs))
    workers = [threading.Thread(target=_in_thread, args=(job, barrier, problems)) for job in jobs]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=240)
    assert not any(worker.is_alive() for worker in workers), "a thread hung"
    assert problems == [], "\n".join(problems)

    _assert_nothing_lost(owners + traders)
    assert Trade.objects.filter(order__standing_forecast__isnull=False).exists()
    for forecast in StandingForecast.objects.all():
        assert forecast.spent <= forecast.budget, forecast.pk
    # The two owners left alone kept one standing forecast each, still armed.
    for owner in owners[2:]:
        assert StandingForecast.objects.filter(user=owner, status="active").count() == 1
