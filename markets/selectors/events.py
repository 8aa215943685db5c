"""Reads of a market's audit trail: the staff actions on it (MarketEvent), and its text revisions among them."""

from django.db.models import QuerySet

from markets.models import Market, MarketEvent


def market_events(*, market: Market, kinds: tuple[str, ...] = ()) -> QuerySet[MarketEvent]:
    """The market's events, newest first, with who acted (one query); `kinds` keeps only those."""
    events = MarketEvent.objects.filter(market=market).select_related("actor").order_by("-created_at", "-id")
    return events.filter(kind__in=kinds) if kinds else events


def market_revisions(*, market: Market) -> QuerySet[MarketEvent]:
    """The public revision history of the market's texts (question, description, criteria, category)."""
    return market_events(market=market, kinds=(MarketEvent.Kind.EDITED,))
