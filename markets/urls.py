from django.urls import URLPattern, URLResolver, path

from markets.views import comments, orders, pages, proposals, staff, standing, trading

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
    path("markets/<slug:slug>/orders/", orders.order_place_view, name="order-place"),
    path("orders/<int:order_id>/cancel/", orders.order_cancel_view, name="order-cancel"),
    path("markets/<slug:slug>/standing-forecasts/", standing.standing_create_view, name="standing-create"),
    path("standing-forecasts/<int:forecast_id>/cancel/", standing.standing_cancel_view, name="standing-cancel"),
    path("markets/<slug:slug>/comments/", comments.comment_create_view, name="comment-create"),
    path("markets/<slug:slug>/follow/", comments.market_follow_view, name="follow"),
    path("comments/<int:comment_id>/edit/", comments.comment_edit_view, name="comment-edit"),
    path("comments/<int:comment_id>/report/", comments.comment_report_view, name="comment-report"),
    path("comments/<int:comment_id>/hide/", comments.comment_hide_view, name="comment-hide"),
    path("comments/<int:comment_id>/delete/", comments.comment_delete_view, name="comment-delete"),
    path("staff/comments/", comments.moderation_queue_view, name="staff-comments"),
    path("staff/reports/<int:report_id>/dismiss/", comments.report_dismiss_view, name="staff-report-dismiss"),
    path(
        "markets/<slug:slug>/proposals/<int:proposal_id>/challenge/",
        proposals.challenge_view,
        name="challenge",
    ),
    path("staff/resolutions/", staff.resolution_queue_view, name="staff-resolutions"),
    path("staff/proposals/<int:proposal_id>/decide/", proposals.proposal_decide_view, name="staff-proposal-decide"),
    path("staff/markets/<slug:slug>/resolve/", staff.resolve_view, name="staff-resolve"),
    path("staff/markets/<slug:slug>/<str:action>/", staff.market_control_view, name="staff-control"),
]
