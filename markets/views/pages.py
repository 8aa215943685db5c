"""Read pages of the website: the markets list, a market, the live-price fragment, the portfolio,
and the staff pages that create and edit markets."""

import json
from typing import Any

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.errors import DomainError
from accounts.selectors import user_balance
from markets.forms import MarketCreateForm, MarketEditForm, TradeForm, add_domain_error
from markets.models import Market, Resolution
from markets.selectors.listing import SORTS, STATUS_FILTERS, market_categories, market_list_page
from markets.selectors.market_page import (
    DEFAULT_RANGE,
    RANGES,
    market_live,
    market_page_get,
    market_recent_trades,
    market_resolutions,
    market_user_payout,
    market_user_positions,
)
from markets.selectors.portfolio import portfolio_get, portfolio_trades
from markets.services import market_create
from markets.services.lifecycle import market_update
from markets.views.types import AuthedHttpRequest, HtmxHttpRequest


def _range_key(request: HttpRequest) -> str:
    key = request.GET.get("range", DEFAULT_RANGE)
    return key if key in RANGES else DEFAULT_RANGE


def _get_market(request: HttpRequest, slug: str, *, with_outcomes: bool = True) -> Market:
    try:
        return market_page_get(slug=slug, include_drafts=request.user.is_staff, with_outcomes=with_outcomes)
    except Market.DoesNotExist:
        raise Http404("No such market.") from None


def is_tradeable(market: Market) -> bool:
    return market.status == Market.Status.OPEN and market.closes_at > timezone.now()


def live_context(market: Market, range_key: str) -> dict[str, Any]:
    data = market_live(market=market, range_key=range_key)
    return {
        "market": market,
        "live": data,
        "chart_json": json.dumps(data["chart"]),
        "range_key": range_key,
        "ranges": list(RANGES),
        "polling": is_tradeable(market),
    }


def market_context(request: HttpRequest, market: Market, *, form: TradeForm | None = None) -> dict[str, Any]:
    """Everything the market page (and the htmx responses that refresh parts of it) shows."""
    outcomes = list(market.outcomes.all())
    context = live_context(market, _range_key(request))
    context.update(
        outcomes=outcomes,
        trades=market_recent_trades(market=market),
        tradeable=is_tradeable(market),
        form=form or TradeForm(outcomes=outcomes),
        positions=[],
    )
    # The audit trail of every resolution (who, when, what, why), newest first; the current one heads the page.
    resolutions = market_resolutions(market=market)
    context["resolutions"] = resolutions
    context["resolution"] = next((resolution for resolution in resolutions if resolution.is_current), None)
    if request.user.is_authenticated:
        context["positions"] = market_user_positions(market=market, user=request.user, outcomes=outcomes)
        resolution = context["resolution"]
        if context["positions"] and resolution is not None and resolution.state == Resolution.State.SETTLED:
            # Once paid, the position is worth what the settlement paid, not its shares at the last prices.
            payout = market_user_payout(resolution=resolution, user=request.user)
            context["settled_payout"] = payout
            context["settled_profit"] = payout - sum(position.net_cost for position in context["positions"])
        context["balance"] = user_balance(user=request.user)
    return context


@require_GET
def market_list_view(request: HtmxHttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:200]
    category = request.GET.get("category", "").strip()[:50]
    status = request.GET.get("status", "")
    status = status if status in STATUS_FILTERS else ""
    sort = request.GET.get("sort", "volume")
    sort = sort if sort in SORTS else "volume"
    page, cards = market_list_page(
        search=search,
        category=category,
        status=status,
        sort=sort,
        page_number=request.GET.get("page", 1),
        include_drafts=request.user.is_staff,
    )
    context = {
        "page": page,
        "cards": cards,
        "categories": market_categories(),
        "filters": {"q": search, "category": category, "status": status, "sort": sort},
        "statuses": list(STATUS_FILTERS),
        "sorts": {"volume": "Volume", "newest": "Newest", "closing": "Closing soon"},
    }
    template = "markets/_market_results.html" if request.htmx else "markets/list.html"
    return render(request, template, context)


@require_GET
def market_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    market = _get_market(request, slug)
    return render(request, "markets/detail.html", market_context(request, market))


@require_GET
def market_live_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The fragment an open market page polls: prices and chart data, from the cache if it can."""
    market = _get_market(request, slug, with_outcomes=False)
    return render(request, "markets/_live.html", live_context(market, _range_key(request)))


@login_required
@require_GET
def portfolio_view(request: AuthedHttpRequest) -> HttpResponse:
    context = {
        "portfolio": portfolio_get(user=request.user),
        "trades": portfolio_trades(user=request.user, page_number=request.GET.get("page", 1)),
    }
    return render(request, "markets/portfolio.html", context)


@staff_member_required
@require_http_methods(["GET", "POST"])
def market_create_view(request: AuthedHttpRequest) -> HttpResponse:
    form = MarketCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        closes_at = data["closes_at"]
        try:
            market = market_create(
                slug=data["slug"],
                question=data["question"],
                kind=data["kind"],
                liquidity=data["liquidity"],
                closes_at=closes_at,
                outcomes=data["outcome_pairs"],
                initial_probabilities=data["initial_probabilities"],
                description=data["description"],
                resolution_criteria=data["resolution_criteria"],
                category=data["category"],
                created_by=request.user,
            )
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, "Market created and open for trading.")
            return redirect("markets:detail", slug=market.slug)
    status = 422 if form.errors else 200
    return render(request, "markets/market_form.html", {"form": form, "creating": True}, status=status)


@staff_member_required
@require_http_methods(["GET", "POST"])
def market_edit_view(request: AuthedHttpRequest, slug: str) -> HttpResponse:
    market = _get_market(request, slug, with_outcomes=False)
    initial = {name: getattr(market, name) for name in MarketEditForm.base_fields}
    form = MarketEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            market_update(market=market, **form.cleaned_data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, "Market updated.")
            return redirect("markets:detail", slug=market.slug)
    status = 422 if form.errors else 200
    return render(request, "markets/market_form.html", {"form": form, "market": market}, status=status)
