"""Proposals and challenges on the website: the market page's section (markets/_proposals.html), a trader's
challenge, and a resolver's decision from the staff queue. All call the services of
markets.services.proposals, as the API does."""

from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.models import User
from config.core.errors import DomainError
from config.core.ratelimit import rate_limit_consume
from markets.models import Market, Position, Proposal
from markets.selectors.markets import Drafts, market_by_slug
from markets.selectors.proposals import market_proposals
from markets.services import challenge_create, challenge_decide, user_is_resolver
from markets.services.proposals import challenge_bond

MAX_TEXT = 2000


def challenge_rate() -> str:
    """The API's challenge throttle rate (API_RATE_CHALLENGE): the website's challenges count the same."""
    rates = cast(dict[str, str], cast(dict[str, Any], settings.REST_FRAMEWORK)["DEFAULT_THROTTLE_RATES"])
    return str(rates["challenge"])


def proposals_context(request: HttpRequest, market: Market) -> dict[str, Any]:
    """What the market page's proposals section shows: every proposal with its challenges, and whether the
    visitor may challenge the live one."""
    proposals = list(market_proposals(market=market))
    live = next((proposal for proposal in proposals if proposal.state in Proposal.LIVE_STATES), None)
    user = request.user
    can_challenge = (
        live is not None
        and timezone.now() < live.challenge_until
        and user.is_authenticated
        and Position.objects.filter(market=market, user_id=user.pk).exists()
        and not any(challenge.user_id == user.pk for challenge in live.challenges.all())
    )
    return {
        "proposals": proposals,
        "live_proposal": live,
        "can_challenge": can_challenge,
        "challenge_bond": challenge_bond(),
        "is_resolver": user_is_resolver(user),
    }


def _market_url(market: Market) -> str:
    return reverse("markets:detail", args=[market.slug]) + "#proposals"


@require_POST
def challenge_view(request: HttpRequest, slug: str, proposal_id: int) -> HttpResponse:
    """A trader's challenge, with its bond; back to the market page with what happened."""
    if not request.user.is_authenticated:
        return redirect(f"{reverse('login')}?next={reverse('markets:detail', args=[slug])}")
    try:
        market = market_by_slug(slug=slug, drafts=Drafts.HIDDEN)
        proposal = Proposal.objects.get(pk=proposal_id, market=market)
    except (Market.DoesNotExist, Proposal.DoesNotExist):
        raise Http404("No such proposal.") from None
    wait = rate_limit_consume(
        scope="challenge",
        ident=f"user{request.user.pk}",
        rate=challenge_rate(),
    )
    if wait is not None:
        messages.error(request, f"Too many challenges: try again in {wait} seconds.")
        return redirect(_market_url(market))
    reason = request.POST.get("reason", "")[: MAX_TEXT + 1]
    try:
        result = challenge_create(proposal=proposal, user=cast(User, request.user), reason=reason)
    except DomainError as error:
        messages.error(request, error.message)
    else:
        if result.created:
            messages.success(request, f"Challenge recorded; your bond of {result.challenge.bond:.2f} credits is held.")
        else:
            messages.info(request, "You had already challenged this proposal.")
    return redirect(_market_url(market))


@require_POST
def proposal_decide_view(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """A resolver upholds or rejects a proposal's challenges, from the staff queue."""
    if not user_is_resolver(request.user):
        raise PermissionDenied("Resolvers only.")
    try:
        proposal = Proposal.objects.select_related("market").get(pk=proposal_id)
    except Proposal.DoesNotExist:
        raise Http404("No such proposal.") from None
    try:
        decided = challenge_decide(
            proposal=proposal,
            user=request.user,
            decision=request.POST.get("decision", ""),
            note=request.POST.get("note", "")[: MAX_TEXT + 1],
        )
    except DomainError as error:
        messages.error(request, error.message)
        return redirect("markets:staff-resolutions")
    if decided.state == Proposal.State.OVERTURNED:
        messages.success(request, "Challenge upheld, bonds returned. Propose again or resolve directly.")
        return redirect("markets:staff-resolve", proposal.market.slug)
    messages.success(request, "Challenge rejected, bonds kept; the proposal is final and settlement is queued.")
    return redirect("markets:staff-resolutions")
