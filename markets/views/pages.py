"""Read pages of the website: the markets list, a market, the live-price fragment, the portfolio,
and the staff pages that create and edit markets."""

from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthedHttpRequest
from accounts.selectors import user_reserved
from config.core.errors import DomainError
from config.core.http import HtmxHttpRequest
from markets.forms import MarketCreateForm, MarketEditForm, TradeForm, add_domain_error
from markets.selectors.follows import user_feed
from markets.selectors.listing import SORTS, STATUS_FILTERS, market_list_page
from markets.selectors.markets import drafts_for, market_categories
from markets.selectors.net_worth import net_worth_chart, user_net_worth_history
from markets.selectors.orders import user_orders
from markets.selectors.portfolio import portfolio_get, portfolio_trades
from markets.services import market_create
from markets.services.lifecycle import EDITABLE_TEXT_FIELDS, market_update
from markets.views.market import discussion_context, live_context, market_context, market_or_404, range_key
from markets.views.proposals import proposals_context
from markets.views.standing import standing_context

HOME_FEED_ITEMS = 8


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
        drafts=drafts_for(request.user),
    )
    context = {
        "page": page,
        "cards": cards,
        "categories": market_categories(),
        "filters": {"q": search, "category": category, "status": status, "sort": sort},
        "statuses": list(STATUS_FILTERS),
        "sorts": {"volume": "Volume", "newest": "Newest", "closing": "Closing soon"},
    }
    if request.htmx:
        return render(request, "markets/_market_results.html", context)
    if request.user.is_authenticated:
        # The home page of a signed-in user leads with what the people they follow did.
        context["feed"], _next = user_feed(user=request.user, limit=HOME_FEED_ITEMS)
    return render(request, "markets/list.html", context)


@require_GET
def market_detail_view(request: HttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug)
    outcomes = list(market.outcomes.all())
    form = TradeForm(outcomes=outcomes, initial=TradeForm.initial_from_query(request.GET, outcomes=outcomes))
    context = market_context(request, market, form=form)
    context.update(discussion_context(request, market))
    context.update(proposals_context(request, market))
    context.update(standing_context(request, market))
    return render(request, "markets/detail.html", context)


@require_GET
def market_live_view(request: HttpRequest, slug: str) -> HttpResponse:
    """The fragment an open market page polls: prices and chart data, from the cache if it can."""
    market = market_or_404(request, slug, with_outcomes=False)
    return render(request, "markets/_live.html", live_context(market, range_key(request)))


@login_required
@require_GET
def portfolio_view(request: AuthedHttpRequest) -> HttpResponse:
    portfolio = portfolio_get(user=request.user)
    reserved = user_reserved(user=request.user)
    # Credits held for open buy orders are still the user's: they count in the net worth.
    history = user_net_worth_history(user=request.user, balance=portfolio.balance + reserved)
    context = {
        "portfolio": portfolio,
        "reserved": reserved,
        "open_orders": list(user_orders(user_id=request.user.pk, open_only=True)),
        "trades": portfolio_trades(user=request.user, page_number=request.GET.get("page", 1)),
        "net_worth_chart": net_worth_chart(history),
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
    market = market_or_404(request, slug, with_outcomes=False)
    initial = {name: getattr(market, name) for name in EDITABLE_TEXT_FIELDS}
    form = MarketEditForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            data = dict(form.cleaned_data)
            reason = data.pop("reason")
            market_update(market=market, user=request.user, reason=reason, **data)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, "Market updated.")
            return redirect("markets:detail", slug=market.slug)
    status = 422 if form.errors else 200
    return render(request, "markets/market_form.html", {"form": form, "market": market}, status=status)
