from django.urls import URLPattern, URLResolver, path

from forecast import views

app_name = "forecast"

urlpatterns: list[URLPattern | URLResolver] = [
    path("leaderboard/", views.leaderboard_view, name="leaderboard"),
    path("users/<str:username>/", views.user_profile_view, name="user-profile"),
]
