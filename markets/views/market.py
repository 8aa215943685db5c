"""What the market page and its htmx fragments share: the market (or 404), and the context they render."""

from typing import Any

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest
from django.utils import timezone

from accounts.selectors import user_balance
from markets.forms import MARKET_CONTROLS, CommentForm, LimitOrderForm, TradeForm, market_controls_for
from markets.models import Market, Resolution
from markets.selectors.comments import ORDERINGS, market_comments
from markets.selectors.events import market_log
from markets.selectors.follows import market_followed
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
from markets.selectors.markets import drafts_for
from markets.selectors.orders import order_book, user_orders
from markets.selectors.results import SETTLED_STATUSES, market_results

MARKET_LOG_LENGTH = 50

COMMENTS_PER_PAGE = 20


def range_key(request: HttpRequest) -> str:
    key = request.GET.get("range", DEFAULT_RANGE)
    return key if key in RANGES else DEFAULT_RANGE


def market_or_404(request: HttpRequest, slug: str, *, with_outcomes: bool = True) -> Market:
    try:
        return market_page_get(slug=slug, drafts=drafts_for(request.user), with_outcomes=with_outcomes)
    except Market.DoesNotExist:
        raise Http404("No such market.") from None


def live_context(market: Market, range_key: str) -> dict[str, Any]:
    data = market_live(market=market, range_key=range_key)
    # A settled market shows what each share paid, not its last price.
    result = None
    if market.status in SETTLED_STATUSES:
        result = market_results(markets=[market], outcomes={market.pk: list(market.outcomes.all())}).get(market.pk)
    return {
        "result": result,
        "market": market,
        "live": data,
        # Read by static/js/market.js; a binary market draws its Yes line only, in the Yes button's colour.
        "chart": {**data["chart"], "binary": market.is_binary},
        "range_key": range_key,
        "ranges": list(RANGES),
        "polling": market.is_tradeable(timezone.now()),
    }


def market_context(request: HttpRequest, market: Market, *, form: TradeForm | None = None) -> dict[str, Any]:
    """Everything the market page (and the htmx responses that refresh parts of it) shows."""
    outcomes = list(market.outcomes.all())
    context = live_context(market, range_key(request))
    context.update(
        outcomes=outcomes,
        trades=market_recent_trades(market=market),
        tradeable=market.is_tradeable(timezone.now()),
        form=form or TradeForm(outcomes=outcomes),
        order_form=LimitOrderForm(outcomes=outcomes, prefix="order"),
        order_book=order_book(market_id=market.pk),
        positions=[],
        my_orders=[],
    )
    # Every resolution, newest first: the current one heads the page; the market log shows each with its state.
    resolutions = market_resolutions(market=market)
    context["resolution"] = next((resolution for resolution in resolutions if resolution.is_current), None)
    context["events"] = market_log(market=market, resolutions=resolutions, length=MARKET_LOG_LENGTH)
    if request.user.is_staff:
        context["controls"] = [MARKET_CONTROLS[action](prefix=action) for action in market_controls_for(market)]
    if request.user.is_authenticated:
        context["positions"] = market_user_positions(market=market, user=request.user, outcomes=outcomes)
        resolution = context["resolution"]
        if context["positions"] and resolution is not None and resolution.state == Resolution.State.SETTLED:
            # Once paid, the position is worth what the settlement paid, not its shares at the last prices.
            payout = market_user_payout(resolution=resolution, user=request.user)
            context["settled_payout"] = payout
            context["settled_profit"] = payout - sum(position.net_cost for position in context["positions"])
        context["balance"] = user_balance(user=request.user)
        context["my_orders"] = list(user_orders(user_id=request.user.pk, open_only=True, market_id=market.pk))
    return context


def discussion_context(request: HttpRequest, market: Market) -> dict[str, Any]:
    """The market page's discussion (?comments=newest|top, ?cpage=N) and whether the reader follows the market."""
    ordering = request.GET.get("comments", "newest")
    ordering = ordering if ordering in ORDERINGS else "newest"
    paginator = Paginator(market_comments(market=market).order_by(*ORDERINGS[ordering]), COMMENTS_PER_PAGE)
    context: dict[str, Any] = {
        "comment_page": paginator.get_page(request.GET.get("cpage")),
        "comment_ordering": ordering,
        "comment_orderings": [("newest", "Newest"), ("top", "Most replies")],
        "comment_form": CommentForm(),
        "following": False,
    }
    if request.user.is_authenticated:
        context["following"] = market_followed(market=market, user=request.user)
    return context
