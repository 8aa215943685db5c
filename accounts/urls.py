from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, path

from accounts import views

# No namespace: settings.LOGIN_URL and Django's auth views refer to "login", "password_change_done" and
# the password_reset_* pages by these bare names.
urlpatterns: list[URLPattern | URLResolver] = [
    path("signup/", views.signup_view, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password_reset"),
    # The admin login offers "Forgotten your password?" when this name exists: the same page.
    path("password/reset/", views.PasswordResetView.as_view(), name="admin_password_reset"),
    path("password/reset/sent/", auth_views.PasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password/reset/<uidb64>/<token>/",
        views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password/reset/done/", auth_views.PasswordResetCompleteView.as_view(), name="password_reset_complete"),
    path("api-keys/", views.api_keys_view, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
    path("notifications/", views.notifications_view, name="notifications"),
    path("notifications/settings/", views.notification_settings_view, name="notification-settings"),
    path("notifications/unsubscribe/<str:token>/", views.unsubscribe_view, name="unsubscribe"),
    path("follow/<str:username>/", views.user_follow_view, name="user-follow"),
]
