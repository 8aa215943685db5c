"""Limit orders on the website: place one from the trade panel's order tab, cancel one (market page, portfolio).

The same services as the API (markets.services.orders); domain errors become form errors or messages."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.http import AuthedHttpRequest
from config.core.errors import DomainError
from markets.forms import LimitOrderForm, add_domain_error
from markets.models import LimitOrder, Trade
from markets.services.orders import order_cancel, order_place
from markets.views.market import market_context, market_or_404


@login_required
@require_POST
def order_place_view(request: AuthedHttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug)
    form = LimitOrderForm(request.POST, outcomes=list(market.outcomes.all()), prefix="order")
    if form.is_valid():
        try:
            result = order_place(user=request.user, market=market, request=form.cleaned_data["request"])
        except DomainError as error:
            add_domain_error(form, error, LimitOrderForm.FIELD_MAP)
        else:
            order = result.order
            words = "Buy" if order.side == Trade.Side.BUY else "Sell"
            summary = f"{words} order placed: {order.outcome.label} at {order.limit_probability * 100:.2f}%."
            if order.filled_shares:
                summary += f" {order.filled_shares:,.2f} shares traded at once."
            if order.status == LimitOrder.Status.FILLED:
                summary += " It filled in full."
            messages.success(request, summary)
            return redirect("markets:detail", slug=market.slug)
    context = market_context(request, market)
    context["order_form"] = form
    return render(request, "markets/detail.html", context, status=422)


@login_required
@require_POST
def order_cancel_view(request: AuthedHttpRequest, order_id: int) -> HttpResponse:
    try:
        order = order_cancel(user=request.user, order_id=order_id)
    except LimitOrder.DoesNotExist:
        raise Http404("No such order of yours.") from None
    except DomainError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, f"Order cancelled: {order.remaining:,.2f} released.")
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return redirect(target)
    return redirect("markets:portfolio")
