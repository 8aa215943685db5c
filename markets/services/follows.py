"""Following a market. Trading a market follows it with no row written (markets.selectors.follows derives it
from positions), so the trade's hot path gains nothing; an explicit follow or unfollow is one upsert."""

from datetime import datetime

from django.utils import timezone

from accounts.models import User
from markets.models import Market, MarketFollow


def market_follow_set(*, user: User, market: Market, following: bool, now: datetime | None = None) -> None:
    """Follows (`following`) or unfollows `market` for `user`; an unfollow of a traded market is remembered."""
    MarketFollow.objects.update_or_create(
        user=user, market=market, defaults={"following": following, "updated_at": now or timezone.now()}
    )
