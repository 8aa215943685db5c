"""Scores and leaderboards in the admin, read-only: they are derived rows that forecast.services rebuilds,
so an edit here would be silently overwritten. Staff can re-run scoring for selected markets instead."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from config.core.admin import ReadOnlyAdmin
from forecast import services
from forecast.models import LeaderboardEntry, MarketScore


@admin.register(MarketScore)
class MarketScoreAdmin(ReadOnlyAdmin):
    list_display = ("market", "user", "profit", "brier", "baseline", "peer", "coverage", "resolved_at")
    list_select_related = ("market", "user")
    search_fields = ("market__slug", "user__username")
    date_hierarchy = "resolved_at"
    actions = ["rescore"]

    @admin.action(description="Re-score the markets of the selected rows")
    def rescore(self, request: HttpRequest, queryset: QuerySet[MarketScore]) -> None:
        market_ids = sorted(set(queryset.values_list("market_id", flat=True)))
        for market_id in market_ids:
            services.market_score(market_id=market_id)
        services.leaderboards_rebuild()
        self.message_user(request, f"Re-scored {len(market_ids)} market(s).", messages.SUCCESS)


@admin.register(LeaderboardEntry)
class LeaderboardEntryAdmin(ReadOnlyAdmin):
    list_display = ("metric", "period", "rank", "user", "value", "markets", "built_at")
    list_filter = ("metric", "period")
    list_select_related = ("user",)
    search_fields = ("user__username",)
