"""The one way to find markets, for the website and the API alike: by slug, and as a filtered list.

Drafts have one policy, stated at every call: `Drafts.HIDDEN` (a draft does not exist: every API read, and
every page for anyone but staff) or `Drafts.SHOWN` (staff pages and staff endpoints, which work on drafts).
`drafts_for(user)` is the website's choice. The API's public reads hide drafts from everyone, staff
included, because they are served from a cache every caller shares.
"""

from collections.abc import Collection
from enum import Enum

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from markets.models import Market, Proposal


class Drafts(Enum):
    HIDDEN = "hidden"
    SHOWN = "shown"


def drafts_for(user: AbstractBaseUser | AnonymousUser) -> Drafts:
    """Staff see drafts on the website; nobody else does."""
    return Drafts.SHOWN if getattr(user, "is_staff", False) else Drafts.HIDDEN


def markets_visible(*, drafts: Drafts, queryset: QuerySet[Market] | None = None) -> QuerySet[Market]:
    """Every market the draft policy lets through (`queryset` adds what the caller needs: joins, annotations)."""
    markets = Market.objects.all() if queryset is None else queryset
    return markets if drafts is Drafts.SHOWN else markets.exclude(status=Market.Status.DRAFT)


def market_by_slug(*, slug: str, drafts: Drafts, queryset: QuerySet[Market] | None = None) -> Market:
    """The market with this slug, if the draft policy lets it through; raises Market.DoesNotExist otherwise."""
    return markets_visible(drafts=drafts, queryset=queryset).get(slug=slug)


# The list filters of the website and the API beyond a market's status: "halted" is an open market whose
# trading staff halted; "proposed" a market with a live resolution proposal (open to challenge or challenged).
HALTED_FILTER = "halted"
PROPOSED_FILTER = "proposed"

# Orderings of a market list, by the API's name for each (the website's sorts map onto them). Each ends on the
# primary key, so a page boundary is always well defined (cursor pagination needs that).
ORDERINGS: dict[str, tuple[str, ...]] = {
    "-created_at": ("-created_at", "-id"),
    "created_at": ("created_at", "id"),
    "closes_at": ("closes_at", "id"),
    "-closes_at": ("-closes_at", "-id"),
    "-volume": ("-volume", "-id"),
    "volume": ("volume", "id"),
}


def markets_search(
    *,
    drafts: Drafts,
    search: str = "",
    category: str = "",
    statuses: Collection[str] = (),
    halted: bool = False,
    proposed: bool = False,
    queryset: QuerySet[Market] | None = None,
) -> QuerySet[Market]:
    """The markets a list shows, unordered (the caller orders with ORDERINGS, or paginates on them).

    `search` matches words in the question, the description, the category or the slug, ignoring case;
    `category` is an exact category (ignoring case); `statuses` keeps only those statuses (all when empty);
    `halted` keeps only open markets whose trading staff halted; `proposed` only markets with a live resolution
    proposal.
    """
    markets = markets_visible(drafts=drafts, queryset=queryset)
    if search:
        markets = markets.filter(
            Q(question__icontains=search)
            | Q(description__icontains=search)
            | Q(category__icontains=search)
            | Q(slug__icontains=search)
        )
    if category:
        markets = markets.filter(category__iexact=category)
    if statuses:
        markets = markets.filter(status__in=list(statuses))
    if halted:
        markets = markets.filter(status=Market.Status.OPEN, halted_at__isnull=False)
    if proposed:
        markets = markets.filter(Exists(Proposal.objects.filter(market=OuterRef("pk"), state__in=Proposal.LIVE_STATES)))
    return markets


def market_categories() -> list[str]:
    """The categories of the markets the public sees, alphabetically."""
    return list(
        markets_visible(drafts=Drafts.HIDDEN)
        .exclude(category="")
        .order_by("category")
        .values_list("category", flat=True)
        .distinct()
    )


def market_slugs_public(*, slugs: Collection[str]) -> set[str]:
    """Which of these slugs name a market the public sees (drafts hidden): the live stream's check of `markets`."""
    return set(markets_visible(drafts=Drafts.HIDDEN).filter(slug__in=list(slugs)).values_list("slug", flat=True))
