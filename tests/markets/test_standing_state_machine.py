"""The orders' state machine (tests/markets/test_order_state_machine.py) with standing forecasts too: random
sequences of trades, limit orders, standing forecasts, cancels, expiries, closes and resolutions.

Every invariant of the orders' machine holds after every step (reconciliation, which now includes the standing
forecasts' spending and orders; nothing reserved spent twice; no fill past its limit; a refusal writes nothing),
and more: no standing forecast spends more than its budget net, an active one holds at most one open order per
side, an ended one none.
"""

import contextlib
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from accounts.models import User
from markets.errors import StandingForecastOrder, StandingNotActive
from markets.models import LimitOrder, Market, StandingForecast
from markets.services.standing import (
    StandingRequest,
    standing_forecast_cancel,
    standing_forecast_create,
    standing_forecasts_expire_due,
)
from tests.markets.machines import machine_run
from tests.markets.test_order_state_machine import OrderMachine, snapshot

beliefs = st.decimals(min_value=Decimal("0.10"), max_value=Decimal("0.90"), places=2)
bands = st.decimals(min_value=Decimal("0.5"), max_value=Decimal("8"), places=1)
budgets = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("300"), places=2)


class StandingMachine(OrderMachine):
    @rule(
        user=OrderMachine.users,
        market=OrderMachine.markets,
        choice=st.integers(0, 5),
        belief=beliefs,
        band=bands,
        budget=budgets,
        expires=st.one_of(st.none(), st.integers(min_value=1, max_value=48)),
    )
    def stand(
        self,
        user: User,
        market: Market,
        choice: int,
        belief: Decimal,
        band: Decimal,
        budget: Decimal,
        expires: int | None,
    ) -> None:
        request = StandingRequest(
            outcome=self._code(market, choice),
            belief=belief,
            band_points=band,
            budget=budget,
            expires_at=None if expires is None else self.now + timedelta(hours=expires),
        )
        note(f"{user.pk} stands {request}")
        self._refusable(
            "standing forecast",
            lambda: standing_forecast_create(user=user, market=market, request=request, now=self.now),
            actor=user,
        )

    @rule(user=OrderMachine.users, pick=st.integers(0, 50))
    def stand_down(self, user: User, pick: int) -> None:
        mine = list(StandingForecast.objects.filter(user=user).order_by("pk").values_list("pk", flat=True))
        if mine:
            forecast_id = mine[pick % len(mine)]
            # An ended one refuses (StandingNotActive), like an ended order.
            with contextlib.suppress(StandingNotActive):
                self._refusable(
                    "standing cancel",
                    lambda: standing_forecast_cancel(user=user, forecast_id=forecast_id, now=self.now),
                )

    @rule(user=OrderMachine.users, pick=st.integers(0, 50))
    def cancel(self, user: User, pick: int) -> None:
        # The orders' rule may pick a standing forecast's order: it is refused alone, and writes nothing.
        before = snapshot()
        try:
            super().cancel(user, pick)
        except StandingForecastOrder:
            assert snapshot() == before

    @rule(hours=st.integers(min_value=1, max_value=24))
    def time_passes(self, hours: int) -> None:
        super().time_passes(hours)
        standing_forecasts_expire_due(now=self.now)
        assert not StandingForecast.objects.filter(status="active", expires_at__lte=self.now).exists()

    @invariant()
    def standing_forecasts_keep_their_bounds(self) -> None:
        for forecast in StandingForecast.objects.all():
            assert forecast.spent <= forecast.budget, forecast.pk
            sides = list(
                LimitOrder.objects.filter(standing_forecast=forecast, status="open").values_list("side", flat=True)
            )
            if forecast.is_active:
                assert len(sides) == len(set(sides)), forecast.pk
            else:
                assert sides == [], forecast.pk


@pytest.mark.slow
def test_random_orders_and_standing_forecasts_keep_every_invariant(db):
    machine_run(StandingMachine, ci_examples=30)
