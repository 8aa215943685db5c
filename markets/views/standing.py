"""Standing forecasts on the website: the form on the market page and the cancel button of each of yours. Thin:
parse the form, call markets.services.standing, turn its refusals into form errors."""

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.http import AuthedHttpRequest
from config.core.api import StandingForecastThrottle
from config.core.errors import DomainError
from markets.forms import StandingForecastForm, add_domain_error
from markets.models import Market
from markets.selectors.standing import user_standing_forecasts
from markets.services.standing import standing_forecast_cancel, standing_forecast_create
from markets.views.market import discussion_context, market_context, market_or_404
from markets.views.proposals import proposals_context

PANEL = "#standing-panel"


def standing_context(
    request: HttpRequest, market: Market, *, form: StandingForecastForm | None = None
) -> dict[str, Any]:
    """The market page's standing-forecast panel: the form and the signed-in user's standing forecasts here."""
    context: dict[str, Any] = {
        "standing_form": form or StandingForecastForm(outcomes=list(market.outcomes.all())),
        "standing_forecasts": [],
    }
    if request.user.is_authenticated:
        context["standing_forecasts"] = list(user_standing_forecasts(user_id=request.user.pk, market_id=market.pk)[:20])
    return context


@login_required
@require_POST
def standing_create_view(request: AuthedHttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug)
    form = StandingForecastForm(request.POST, outcomes=list(market.outcomes.all()))
    if form.is_valid():
        wait = StandingForecastThrottle().account_wait(request.user.pk)
        if wait is not None:
            form.add_error(None, f"You are stating standing forecasts fast: wait {max(1, round(wait))} seconds.")
        else:
            try:
                result = standing_forecast_create(user=request.user, market=market, request=form.standing_request())
            except DomainError as error:
                add_domain_error(form, error)
            else:
                forecast = result.forecast
                summary = (
                    f"Standing forecast set on {forecast.outcome.label}: buying below {forecast.buy_limit * 100:.2f}%,"
                    f" selling above {forecast.sell_limit * 100:.2f}%."
                )
                if result.trade_id is not None:
                    summary += " The price was outside your band: it traded at once, up to the band."
                messages.success(request, summary)
                return redirect(reverse("markets:detail", args=[market.slug]) + PANEL)
    context = market_context(request, market)
    context.update(discussion_context(request, market))
    context.update(proposals_context(request, market))
    context.update(standing_context(request, market, form=form))
    return render(request, "markets/detail.html", context, status=422)


@login_required
@require_POST
def standing_cancel_view(request: AuthedHttpRequest, forecast_id: int) -> HttpResponse:
    forecast = user_standing_forecasts(user_id=request.user.pk).filter(pk=forecast_id).first()
    if forecast is None:
        raise Http404("No such standing forecast of yours.")
    try:
        standing_forecast_cancel(user=request.user, forecast_id=forecast.pk)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "Standing forecast cancelled; what its orders held back is yours again.")
    return redirect(reverse("markets:detail", args=[forecast.market.slug]) + PANEL)
