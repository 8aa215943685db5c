"""Score endpoints under /api/v1/. URL names are stable."""

from django.urls import URLPattern, URLResolver, path

from forecast.apis import LeaderboardApi, MarketScoresApi, UserDetailApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("leaderboard/", LeaderboardApi.as_view(), name="api-leaderboard"),
    path("users/<str:username>/", UserDetailApi.as_view(), name="api-user-detail"),
    path("markets/<slug:slug>/scores/", MarketScoresApi.as_view(), name="api-market-scores"),
]
