"""Who follows a market, and what the people a user follows have done (the feed).

A market's followers are the users who traded it (they have a position row, even one sold back to zero)
and the users who followed it explicitly, less those who unfollowed it: no row is written by a trade.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Prefetch, Q

from accounts.models import User, UserFollow
from markets.models import Comment, Market, MarketFollow, Outcome, Position, Trade

FOLLOW = MarketFollow._meta.db_table
POSITION = Position._meta.db_table

# The followers of market %(market)s, one row each (user_id): table names are the models' own.
FOLLOWERS_SQL = f"""
    SELECT p.user_id FROM {POSITION} p
    WHERE p.market_id = %(market)s
      AND NOT EXISTS (
          SELECT 1 FROM {FOLLOW} f WHERE f.market_id = p.market_id AND f.user_id = p.user_id AND NOT f.following
      )
    UNION
    SELECT f.user_id FROM {FOLLOW} f WHERE f.market_id = %(market)s AND f.following
"""  # noqa: S608


def market_followed(*, market: Market, user: User) -> bool:
    """Whether `user` follows `market` (explicitly, or by having traded it and not unfollowed)."""
    explicit = MarketFollow.objects.filter(market=market, user=user).values_list("following", flat=True).first()
    if explicit is not None:
        return explicit
    return Position.objects.filter(market=market, user=user).exists()


def user_follows(*, follower: User, followed: User) -> bool:
    return UserFollow.objects.filter(follower=follower, followed=followed).exists()


def user_follow_counts(*, user: User) -> tuple[int, int]:
    """(followers, following) of `user`."""
    return (
        UserFollow.objects.filter(followed=user).count(),
        UserFollow.objects.filter(follower=user).count(),
    )


def user_followers(*, user: User, limit: int = 50) -> list[User]:
    follows = UserFollow.objects.filter(followed=user).select_related("follower").order_by("-created_at")
    return [follow.follower for follow in follows[:limit]]


@dataclass(frozen=True)
class FeedItem:
    """A trade or a comment by someone the reader follows."""

    kind: str  # "trade" or "comment"
    id: int
    created_at: datetime
    username: str
    market_slug: str
    market_question: str
    trade: Trade | None = None
    comment: Comment | None = None

    @property
    def cursor(self) -> str:
        return f"{self.created_at.isoformat()}|{self.kind}|{self.id}"


def _feed_cursor(cursor: str | None) -> tuple[datetime, str, int] | None:
    if not cursor:
        return None
    try:
        moment, kind, ident = cursor.split("|")
        return datetime.fromisoformat(moment), kind, int(ident)
    except ValueError:
        return None


def user_feed(
    *, user: User, limit: int = 20, before: str | None = None, with_outcome_codes: bool = False
) -> tuple[list[FeedItem], str | None]:
    """The newest trades and visible comments of the users `user` follows, newest first, `limit` at a time;
    returns the page and the cursor of the next (None on the last). One read of whom they follow (the only one
    when nobody), then two indexed reads of `limit + 1` rows; `with_outcome_codes` prefetches each trade's
    market outcomes (the API prints probabilities by outcome code)."""
    followed = list(UserFollow.objects.filter(follower=user).values_list("followed_id", flat=True))
    if not followed:
        return [], None
    after = _feed_cursor(before)
    trades: Any = Trade.objects.filter(user_id__in=followed).select_related("market", "outcome", "user")
    if with_outcome_codes:
        trades = trades.prefetch_related(Prefetch("market__outcomes", queryset=Outcome.objects.order_by("index")))
    comments: Any = Comment.objects.filter(
        author_id__in=followed, deleted_at__isnull=True, hidden_at__isnull=True
    ).select_related("market", "author")
    if after is not None:
        # Ordered by (created_at, kind, id) descending, "trade" > "comment": resume strictly after the cursor.
        moment, kind, ident = after
        earlier = Q(created_at__lt=moment)
        same_moment = Q(created_at=moment)
        trades = trades.filter(earlier | (same_moment & Q(id__lt=ident)) if kind == "trade" else earlier)
        comments = comments.filter(
            earlier | (same_moment & Q(id__lt=ident)) if kind == "comment" else earlier | same_moment
        )
    trades = trades.order_by("-created_at", "-id")[: limit + 1]
    comments = comments.order_by("-created_at", "-id")[: limit + 1]
    items = [
        FeedItem("trade", t.pk, t.created_at, t.user.username, t.market.slug, t.market.question, trade=t)
        for t in trades
    ] + [
        FeedItem("comment", c.pk, c.created_at, c.author.username, c.market.slug, c.market.question, comment=c)
        for c in comments
    ]
    items.sort(key=lambda item: (item.created_at, item.kind, item.id), reverse=True)
    page = items[:limit]
    next_cursor = page[-1].cursor if len(items) > limit else None
    return page, next_cursor
