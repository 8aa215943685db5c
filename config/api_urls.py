"""Every REST endpoint under /api/v1/, collected from the apps."""

from django.urls import include, path

urlpatterns = [
    path("", include("accounts.api_urls")),
    path("", include("markets.api_urls")),
    path("", include("forecast.api_urls")),
]
