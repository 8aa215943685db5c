from django.urls import URLPattern, URLResolver, path

from accounts.apis import MeApi, MeNotificationsApi, MeNotificationsReadApi, TokenCreateApi, UserFollowApi

urlpatterns: list[URLPattern | URLResolver] = [
    path("me/", MeApi.as_view(), name="api-me"),
    path("me/notifications/", MeNotificationsApi.as_view(), name="api-me-notifications"),
    path("me/notifications/read/", MeNotificationsReadApi.as_view(), name="api-me-notifications-read"),
    path("auth/token/", TokenCreateApi.as_view(), name="api-auth-token"),
    path("users/<str:username>/follow/", UserFollowApi.as_view(), name="api-user-follow"),
]
