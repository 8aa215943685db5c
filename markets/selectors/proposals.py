"""Reads of proposals and challenges, for the market page, the staff queue and the API."""

from django.db.models import Prefetch, QuerySet

from markets.models import Challenge, Market, Outcome, Proposal


def market_proposals(*, market: Market) -> QuerySet[Proposal]:
    """The market's proposals, newest first, each with its challenges (oldest first) and what serializing
    them needs, in a fixed number of queries."""
    return (
        Proposal.objects.filter(market=market)
        .select_related("market", "outcome", "created_by", "decided_by")
        .prefetch_related(
            Prefetch("market__outcomes", queryset=Outcome.objects.order_by("index")),
            Prefetch("challenges", queryset=Challenge.objects.select_related("user").order_by("created_at", "pk")),
        )
        .order_by("-created_at", "-pk")
    )


def proposals_awaiting_decision() -> QuerySet[Proposal]:
    """Challenged proposals, oldest first: the staff queue's first section."""
    return (
        Proposal.objects.filter(state=Proposal.State.CHALLENGED)
        .select_related("market", "outcome", "created_by")
        .prefetch_related(
            Prefetch("challenges", queryset=Challenge.objects.select_related("user").order_by("created_at", "pk"))
        )
        .order_by("created_at", "pk")
    )


def proposals_open() -> QuerySet[Proposal]:
    """Proposals in their challenge window, soonest final first."""
    return (
        Proposal.objects.filter(state=Proposal.State.OPEN)
        .select_related("market", "outcome", "created_by")
        .order_by("challenge_until", "pk")
    )
