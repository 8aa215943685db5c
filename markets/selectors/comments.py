"""Reads of the discussion: a market's comments with their replies, one user's comments, the moderation queue.

Deleted and hidden comments are shown to nobody, on the pages or in the API (a hidden thread's replies go
with it)."""

from django.db.models import Prefetch, Q, QuerySet

from accounts.models import User
from markets.models import Comment, CommentReport, Market

VISIBLE = Q(deleted_at__isnull=True, hidden_at__isnull=True)
# The orderings of a market's top-level comments; each ends on a unique key, as cursor pages need.
ORDERINGS: dict[str, tuple[str, ...]] = {
    "newest": ("-created_at", "-id"),
    "top": ("-reply_count", "-created_at", "-id"),
}


def market_comments(*, market: Market) -> QuerySet[Comment]:
    """The market's visible top-level comments with their visible replies (oldest first) and authors."""
    replies = Comment.objects.filter(VISIBLE).select_related("author").order_by("created_at", "id")
    return (
        Comment.objects.filter(VISIBLE, market=market, parent__isnull=True)
        .select_related("author")
        .prefetch_related(Prefetch("replies", queryset=replies, to_attr="visible_replies"))
    )


def comment_visible(*, comment_id: int) -> Comment | None:
    """A visible comment whose market is not a draft; None otherwise (deleted, hidden, or no such comment)."""
    return (
        Comment.objects.filter(VISIBLE, pk=comment_id)
        .exclude(market__status=Market.Status.DRAFT)
        .exclude(parent__isnull=False, parent__hidden_at__isnull=False)
        .select_related("market", "author")
        .first()
    )


def user_comments(*, user: User, limit: int = 20) -> list[Comment]:
    """A user's newest visible comments, for their profile."""
    return list(
        Comment.objects.filter(VISIBLE, author=user)
        .exclude(market__status=Market.Status.DRAFT)
        .select_related("market")
        .order_by("-created_at", "-id")[:limit]
    )


def open_reports() -> QuerySet[CommentReport]:
    """The moderation queue: open reports, oldest first, with their comment and who reported it."""
    return (
        CommentReport.objects.filter(state=CommentReport.Outcome.OPEN)
        .select_related("comment", "comment__author", "comment__market", "reporter")
        .order_by("created_at", "id")
    )
