from django.urls import URLPattern, URLResolver, path

from accounts.apis import MeApi, TokenCreateApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", MeApi.as_view(), name="api-me"),
    path("auth/token/", TokenCreateApi.as_view(), name="api-auth-token"),
]
