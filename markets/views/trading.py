"""The trade panel: a live preview while typing (htmx) and the trade itself.

Every number comes from markets.services (market_quote, trade_execute); domain errors become
form errors in plain words. After a trade, htmx swaps the panel and, out of band, the prices,
the position and the balance, so the page never reloads.
"""

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.selectors import user_balance
from config.core.errors import DomainError
from config.core.http import HtmxHttpRequest
from markets.forms import TradeForm, add_domain_error
from markets.models import Market, Trade
from markets.selectors.market_page import user_shares_held
from markets.services import market_quote, trade_execute
from markets.views.market import market_context, market_or_404


@require_GET
def trade_preview_view(request: HttpRequest, slug: str) -> HttpResponse:
    """What the trade in the form would do now; writes nothing."""
    market = market_or_404(request, slug)
    outcomes = list(market.outcomes.all())
    form = TradeForm(request.GET, outcomes=outcomes)
    context: dict[str, object] = {"form": form, "market": market, "quote": None}
    if market.is_halted and market.status == Market.Status.OPEN:
        context["message"] = f"Trading on this market is halted: {market.halt_reason}"
    elif not market.is_tradeable(timezone.now()):
        context["message"] = "This market is closed for trading."
    elif form.is_valid():
        trade_request = form.cleaned_data["request"]
        try:
            quote = market_quote(market=market, request=trade_request)
        except DomainError as error:
            context["message"] = error.message
        else:
            traded = next(o for o in outcomes if o.code == quote.outcome_code)
            # A forecast on a binary market may trade the other side; report the side the trader chose.
            chosen = next(o for o in outcomes if o.code == trade_request.outcome)
            context.update(
                quote=quote,
                traded=traded,
                chosen=chosen,
                chosen_after=quote.probabilities_after[chosen.index],
                quoted_for=trade_request.fingerprint(market_id=market.pk),
                # A share pays one credit if its outcome happens: what the bought shares would pay, and the gain.
                pays_if_wins=quote.shares,
                profit_if_wins=quote.shares - quote.amount,
                balance=None,
                held=None,
            )
            if request.user.is_authenticated:
                if quote.side == Trade.Side.BUY:
                    context["balance"] = user_balance(user=request.user)
                else:
                    context["held"] = user_shares_held(user=request.user, outcome=traded)
    return render(request, "markets/_trade_preview.html", context)


@require_POST
def trade_execute_view(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    market = market_or_404(request, slug)
    outcomes = list(market.outcomes.all())
    form = TradeForm(request.POST, outcomes=outcomes)
    if not request.user.is_authenticated:
        form.is_valid()
        form.add_error(None, "Log in or sign up to trade.")
    elif form.is_valid():
        try:
            result = trade_execute(
                user=request.user, market=market, request=form.request_to_execute(market_id=market.pk)
            )
        except DomainError as error:
            add_domain_error(form, error, TradeForm.FIELD_MAP)
        else:
            trade = result.trade
            verb = "Bought" if trade.side == trade.Side.BUY else "Sold"
            price = f"{trade.average_price * 100:.1f}%"
            summary = (
                f"{verb} {trade.shares:,.2f} {trade.outcome.label} shares "
                f"for {trade.amount:,.2f} credits ({price} each)."
            )
            if not request.htmx:
                messages.success(request, summary)
                return redirect("markets:detail", slug=market.slug)
            market = market_or_404(request, slug)
            fresh = TradeForm(
                outcomes=list(market.outcomes.all()),
                initial={name: form.cleaned_data[name] for name in ("outcome", "side", "mode")},
            )
            context = market_context(request, market, form=fresh)
            context.update(success=summary, balance=result.balance)
            return render(request, "markets/_trade_response.html", context)
    if request.htmx:
        context = market_context(request, market, form=form)
        return render(request, "markets/_trade_panel.html", context)
    return render(request, "markets/detail.html", market_context(request, market, form=form), status=422)
