"""Reads of standing forecasts: a user's own (with their open orders), and the beliefs a profile shows."""

from django.db.models import Prefetch, QuerySet

from markets.models import LimitOrder, StandingForecast


def user_standing_forecasts(
    *, user_id: int, active_only: bool = False, market_id: int | None = None
) -> QuerySet[StandingForecast]:
    """The user's standing forecasts, newest first, with their market, outcome and open orders (`open_orders`)."""
    forecasts = (
        StandingForecast.objects.filter(user_id=user_id)
        .select_related("market", "outcome")
        .prefetch_related(
            Prefetch(
                "orders",
                queryset=LimitOrder.objects.filter(status=LimitOrder.Status.OPEN).order_by("side"),
                to_attr="open_orders",
            )
        )
    )
    if active_only:
        forecasts = forecasts.filter(status=StandingForecast.Status.ACTIVE)
    if market_id is not None:
        forecasts = forecasts.filter(market_id=market_id)
    return forecasts.order_by("-created_at", "-id")


def user_standing_beliefs(*, user_id: int) -> list[StandingForecast]:
    """What a profile shows: the user's active standing forecasts on markets the public sees (belief and band, not
    the budget), newest first."""
    return list(
        StandingForecast.objects.filter(user_id=user_id, status=StandingForecast.Status.ACTIVE)
        .exclude(market__status="draft")
        .select_related("market", "outcome")
        .order_by("-created_at", "-id")
    )
