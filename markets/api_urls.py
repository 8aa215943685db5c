"""Market endpoints under /api/v1/. URL names are stable; staff endpoints (markets/apis/staff.py) add theirs here."""

from django.urls import URLPattern, URLResolver, path

from markets.apis import lifecycle, staff
from markets.apis.comments import (
    CommentDetailApi,
    CommentHideApi,
    CommentReportsApi,
    MarketCommentsApi,
    MarketFollowApi,
    MeFeedApi,
)
from markets.apis.exports import DatasetDownloadApi, DatasetListApi, MarketExportApi, MeExportApi
from markets.apis.history import MarketHistoryApi
from markets.apis.markets import DETAIL_RENDERING, market_detail_render
from markets.apis.orders import MarketOrdersApi, MeOrdersApi, OrderDetailApi
from markets.apis.portfolio import MePositionsApi, MeTradesApi
from markets.apis.proposals import MarketProposalsApi, ProposalChallengesApi, ProposalDecisionApi
from markets.apis.standing import MarketStandingForecastsApi, MeStandingForecastsApi, StandingForecastDetailApi
from markets.apis.stream import StreamApi
from markets.apis.trading import MarketQuoteApi, MarketTradesApi
from markets.cache import snapshot_renderer_register

# Every stored snapshot carries the detail's body, rendered once when stored (MarketsConfig.ready loads this module
# in every process, so a snapshot a Celery task stores has it too).
snapshot_renderer_register(DETAIL_RENDERING, market_detail_render)

urlpatterns: list[URLPattern | URLResolver] = [
    # GET lists markets (MarketListApi); POST creates one (staff): one view answers both methods.
    path("markets/", staff.MarketCollectionApi.as_view(), name="api-markets"),
    # GET reads one market (MarketDetailApi); PATCH edits its texts (staff): one view answers both methods.
    path("markets/<slug:slug>/", lifecycle.MarketResourceApi.as_view(), name="api-market-detail"),
    path("markets/<slug:slug>/history/", MarketHistoryApi.as_view(), name="api-market-history"),
    path("markets/<slug:slug>/quote/", MarketQuoteApi.as_view(), name="api-market-quote"),
    path("markets/<slug:slug>/trades/", MarketTradesApi.as_view(), name="api-market-trades"),
    path("markets/<slug:slug>/orders/", MarketOrdersApi.as_view(), name="api-market-orders"),
    path("orders/<int:order_id>/", OrderDetailApi.as_view(), name="api-order-detail"),
    path("me/orders/", MeOrdersApi.as_view(), name="api-me-orders"),
    path(
        "markets/<slug:slug>/standing-forecasts/",
        MarketStandingForecastsApi.as_view(),
        name="api-market-standing-forecasts",
    ),
    path(
        "standing-forecasts/<int:forecast_id>/",
        StandingForecastDetailApi.as_view(),
        name="api-standing-forecast-detail",
    ),
    path("me/standing-forecasts/", MeStandingForecastsApi.as_view(), name="api-me-standing-forecasts"),
    path("markets/<slug:slug>/resolution/", staff.MarketResolutionApi.as_view(), name="api-market-resolution"),
    path("markets/<slug:slug>/close/", lifecycle.MarketCloseApi.as_view(), name="api-market-close"),
    path("markets/<slug:slug>/extend/", lifecycle.MarketExtendApi.as_view(), name="api-market-extend"),
    path("markets/<slug:slug>/halt/", lifecycle.MarketHaltApi.as_view(), name="api-market-halt"),
    path("markets/<slug:slug>/resume/", lifecycle.MarketResumeApi.as_view(), name="api-market-resume"),
    path("markets/<slug:slug>/liquidity/", lifecycle.MarketLiquidityApi.as_view(), name="api-market-liquidity"),
    path("markets/<slug:slug>/outcomes/", lifecycle.MarketOutcomeAddApi.as_view(), name="api-market-outcomes"),
    path("markets/<slug:slug>/events/", lifecycle.MarketEventsApi.as_view(), name="api-market-events"),
    path("markets/<slug:slug>/revisions/", lifecycle.MarketRevisionsApi.as_view(), name="api-market-revisions"),
    path("markets/<slug:slug>/comments/", MarketCommentsApi.as_view(), name="api-market-comments"),
    path("markets/<slug:slug>/follow/", MarketFollowApi.as_view(), name="api-market-follow"),
    path("comments/<int:comment_id>/", CommentDetailApi.as_view(), name="api-comment-detail"),
    path("comments/<int:comment_id>/reports/", CommentReportsApi.as_view(), name="api-comment-reports"),
    path("comments/<int:comment_id>/hide/", CommentHideApi.as_view(), name="api-comment-hide"),
    path("me/feed/", MeFeedApi.as_view(), name="api-me-feed"),
    path("markets/<slug:slug>/export/", MarketExportApi.as_view(), name="api-market-export"),
    path("datasets/", DatasetListApi.as_view(), name="api-datasets"),
    path("datasets/<str:name>/", DatasetDownloadApi.as_view(), name="api-dataset-download"),
    path("me/export/", MeExportApi.as_view(), name="api-me-export"),
    path("markets/<slug:slug>/proposals/", MarketProposalsApi.as_view(), name="api-market-proposals"),
    path(
        "markets/<slug:slug>/proposals/<int:proposal_id>/challenges/",
        ProposalChallengesApi.as_view(),
        name="api-proposal-challenges",
    ),
    path(
        "markets/<slug:slug>/proposals/<int:proposal_id>/decision/",
        ProposalDecisionApi.as_view(),
        name="api-proposal-decision",
    ),
    path("me/positions/", MePositionsApi.as_view(), name="api-me-positions"),
    path("me/trades/", MeTradesApi.as_view(), name="api-me-trades"),
    # Documents the live stream; the stream process (markets/stream/server.py) serves it.
    path("stream/", StreamApi.as_view(), name="api-stream"),
]
