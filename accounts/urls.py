from django.contrib.auth import views as auth_views
from django.urls import URLPattern, URLResolver, path

from accounts import views

# No namespace: settings.LOGIN_URL and Django's auth views refer to "login" and
# "password_change_done" by these bare names.
urlpatterns: list[URLPattern | URLResolver] = [
    path("signup/", views.signup_view, name="signup"),
    path("login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/change/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("password/change/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("api-keys/", views.api_keys_view, name="api-keys"),
    path("api-keys/<int:key_id>/revoke/", views.api_key_revoke_view, name="api-key-revoke"),
]
