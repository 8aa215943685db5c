"""Staff pages: the queue of markets awaiting resolution (and of challenged proposals awaiting a decision),
resolving one with a confirm step (propose it, a challenge window follows, or resolve it now), and the
controls on a live market (close early, move the close, halt and resume, add liquidity, add an outcome).

The same ResolveForm (markets/forms.py) backs the admin's resolve page (markets/admin.py); both call
`market_resolve`.
Anyone who is not a resolver (staff with the resolve_market permission) gets 403 from the resolution pages,
and anyone who is not staff from the live controls, signed in or not.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from accounts.http import AuthedHttpRequest
from config.core.errors import DomainError
from markets.forms import MARKET_CONTROLS, ResolveForm, add_domain_error
from markets.models import Market, Resolution
from markets.selectors.markets import Drafts, market_by_slug
from markets.selectors.proposals import proposals_awaiting_decision, proposals_open
from markets.services import user_is_resolver

AWAITING = (Market.Status.OPEN, Market.Status.CLOSED, Market.Status.RESOLVING)


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for everyone but staff (no login redirect: the page is not for them)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not (request.user.is_authenticated and request.user.is_staff):
            raise PermissionDenied("Staff only.")
        return view(request, *args, **kwargs)

    return wrapped


def resolver_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """403 for everyone but resolvers, staff with the resolve_market permission (no login redirect: the page
    is not for them)."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not user_is_resolver(request.user):
            raise PermissionDenied("Resolvers only.")
        return view(request, *args, **kwargs)

    return wrapped


@resolver_required
@require_GET
def resolution_queue_view(request: HttpRequest) -> HttpResponse:
    """Closed markets awaiting a resolution first, then those whose close time passed, then settling."""
    markets = (
        Market.objects.filter(status__in=AWAITING)
        .filter(Q(status__in=[Market.Status.CLOSED, Market.Status.RESOLVING]) | Q(closes_at__lte=timezone.now()))
        .annotate(traders=Count("positions__user", distinct=True))
        .order_by("closes_at")
    )
    recent = Resolution.objects.select_related("market", "created_by", "outcome").order_by("-created_at")[:20]
    context = {
        "markets": markets,
        "recent": recent,
        "challenged": proposals_awaiting_decision(),
        "open_proposals": proposals_open(),
    }
    return render(request, "markets/staff/queue.html", context)


@resolver_required
@require_http_methods(["GET", "POST"])
def resolve_view(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the form. POST: the confirm step (what will be paid); POST with `confirm`: resolve."""
    try:
        market = market_by_slug(slug=slug, drafts=Drafts.SHOWN)
    except Market.DoesNotExist:
        raise Http404("No such market.") from None
    outcomes = list(market.outcomes.all())
    form = ResolveForm(request.POST or None, outcomes=outcomes)
    confirming = False
    if request.method == "POST" and form.is_valid():
        confirm = request.POST.get("confirm")
        if confirm in ("yes", "propose"):
            try:
                if confirm == "propose":
                    proposal = form.propose(market=market, user=request.user)
                else:
                    form.resolve(market=market, user=request.user)
            except DomainError as error:
                add_domain_error(form, error)
            else:
                if confirm == "propose":
                    messages.success(
                        request,
                        f"Proposal recorded: open to challenge until {proposal.challenge_until:%d %b %H:%M} UTC.",
                    )
                else:
                    messages.success(request, "Resolution recorded; settlement queued.")
                return redirect("markets:staff-resolutions")
        else:
            confirming = True
    context = {
        "market": market,
        "form": form,
        "confirming": confirming,
        "summary": form.summary() if confirming else [],
        "history": market.resolutions.select_related("created_by", "outcome"),
    }
    return render(request, "markets/staff/resolve.html", context, status=422 if form.errors else 200)


@staff_required
@require_http_methods(["GET", "POST"])
def market_control_view(request: AuthedHttpRequest, slug: str, action: str) -> HttpResponse:
    """One control on a live market. The market page posts its forms here; a refused or invalid one comes
    back on this page with the errors (422), a done one returns to the market page, where its event shows."""
    form_class = MARKET_CONTROLS.get(action)
    if form_class is None:
        raise Http404("No such control.")
    try:
        market = market_by_slug(slug=slug, drafts=Drafts.SHOWN)
    except Market.DoesNotExist:
        raise Http404("No such market.") from None
    form = form_class(request.POST or None, prefix=action)
    if request.method == "POST" and form.is_valid():
        try:
            form.apply(market=market, user=request.user)
        except DomainError as error:
            add_domain_error(form, error)
        else:
            messages.success(request, f"{form.title}: done.")
            return redirect("markets:detail", slug=market.slug)
    context = {"market": market, "form": form}
    return render(request, "markets/staff/control.html", context, status=422 if form.errors else 200)
