from django.urls import URLPattern, URLResolver, path

from markets.views import pages, staff, trading

app_name = "markets"

urlpatterns: list[URLPattern | URLResolver] = [
    path("", pages.market_list_view, name="list"),
    path("portfolio/", pages.portfolio_view, name="portfolio"),
    # Before <slug>/ so "new" is never read as a market's slug.
    path("markets/new/", pages.market_create_view, name="create"),
    path("markets/<slug:slug>/", pages.market_detail_view, name="detail"),
    path("markets/<slug:slug>/edit/", pages.market_edit_view, name="edit"),
    path("markets/<slug:slug>/live/", pages.market_live_view, name="live"),
    path("markets/<slug:slug>/trade/preview/", trading.trade_preview_view, name="trade-preview"),
    path("markets/<slug:slug>/trade/", trading.trade_execute_view, name="trade"),
    path("staff/resolutions/", staff.resolution_queue_view, name="staff-resolutions"),
    path("staff/markets/<slug:slug>/resolve/", staff.resolve_view, name="staff-resolve"),
    path("staff/markets/<slug:slug>/<str:action>/", staff.market_control_view, name="staff-control"),
]
