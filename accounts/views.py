"""Website pages of the accounts app: sign-up and API keys; log-in, log-out, password change and password
reset are Django's own views with our templates, log-out then saying so, the last two followed by
user_password_changed."""

import math
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from accounts.errors import DomainError
from accounts.forms import ApiKeyForm, SignUpForm
from accounts.models import ApiKey, Notification, NotificationPreference, User
from accounts.notifications import (
    ALL_KINDS,
    notification_preference_set,
    notification_preferences,
    notifications_mark_read,
    unsubscribe_apply,
    unsubscribe_token_read,
    user_notifications,
)
from accounts.services import (
    api_key_create,
    api_key_revoke,
    user_create,
    user_follow,
    user_password_changed,
    user_unfollow,
)
from config.core.client_address import client_address
from config.core.ratelimit import rate_limit_consume


def _wait_in_minutes(seconds: int) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"


def _signed_in(request: HttpRequest) -> User:
    """The user of a request behind login_required."""
    user = request.user
    assert isinstance(user, User)
    return user


def _next_url(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or "/"
    allowed = url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
    return target if allowed else "/"


@require_http_methods(["GET", "POST"])
def signup_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("/")
    form = SignUpForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        # Each account receives the sign-up grant: sign-ups per client address are limited so one
        # machine cannot farm credits (or a leaderboard) with fresh accounts.
        wait = rate_limit_consume(
            scope="signup", ident=client_address(request) or "unknown", rate=settings.FORECASTLE_SIGNUP_RATE
        )
        if wait is not None:
            form.add_error(None, f"Too many sign-ups from your address, try again in {_wait_in_minutes(wait)}.")
            status = 429
    if request.method == "POST" and form.is_valid():
        try:
            user = user_create(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data["email"],
            )
        except IntegrityError:
            # Two sign-ups raced for the same name; the unique index decided.
            form.add_error("username", "That username is taken.")
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            messages.success(request, "Welcome to Forecastle! Your account holds your sign-up grant of credits.")
            return redirect(_next_url(request))
    if status == 200 and form.errors:
        status = 422
    return render(request, "accounts/signup.html", {"form": form, "next": _next_url(request)}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
def api_keys_view(request: HttpRequest) -> HttpResponse:
    user = _signed_in(request)
    form = ApiKeyForm(request.POST or None, user=user)
    raw_key = None
    if request.method == "POST" and form.is_valid():
        try:
            _api_key, raw_key = api_key_create(
                user=user,
                name=form.cleaned_data["name"],
                scopes=form.cleaned_data["scopes"],
                expires_at=form.cleaned_data["expires_at"],
            )
        except DomainError as error:
            form.add_error(error.field if error.field in form.fields else None, error.message)
        else:
            form = ApiKeyForm(user=user)
    keys = ApiKey.objects.filter(user=user).order_by("-created_at")
    status = 422 if form.errors else 200
    context = {"form": form, "keys": keys, "raw_key": raw_key, "now": timezone.now()}
    return render(request, "accounts/api_keys.html", context, status=status)


@login_required
@require_POST
def api_key_revoke_view(request: HttpRequest, key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=key_id, user=_signed_in(request))
    api_key_revoke(api_key=api_key)
    messages.success(request, f"Key “{api_key.name}” revoked; programs using it can no longer sign in.")
    return redirect("api-keys")


class PasswordChangeView(auth_views.PasswordChangeView):
    """Django's password change; the account's API keys are revoked with the old password."""

    def form_valid(self, form: PasswordChangeForm) -> HttpResponse:
        response = super().form_valid(form)
        revoked = user_password_changed(user=form.user)
        if revoked:
            messages.info(self.request, f"{revoked} API key{'s' if revoked != 1 else ''} revoked.")
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's "forgot your password" form, with requests limited per client address: each one may
    send an e-mail, to an address the requester chooses."""

    def form_valid(self, form: Any) -> HttpResponse:
        wait = rate_limit_consume(
            scope="password-reset",
            ident=client_address(self.request) or "unknown",
            rate=settings.FORECASTLE_PASSWORD_RESET_RATE,
        )
        if wait is not None:
            form.add_error(None, f"Too many reset requests from your address, try again in {_wait_in_minutes(wait)}.")
            response = self.form_invalid(form)
            response.status_code = 429
            return response
        return super().form_valid(form)


class PasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    """Django's link-from-the-e-mail page: the new password also revokes the API keys and lifts the
    account's login lockout."""

    def form_valid(self, form: SetPasswordForm) -> HttpResponse:
        response = super().form_valid(form)
        user_password_changed(user=form.user)
        return response


class LogoutView(auth_views.LogoutView):
    """Django's log-out, which then says so on the page it lands on."""

    def post(self, request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        messages.success(request, "You have logged out. Log in again any time to trade.")
        return response


NOTIFICATIONS_PER_PAGE = 30


@login_required
@require_http_methods(["GET", "POST"])
def notifications_view(request: HttpRequest) -> HttpResponse:
    """GET: your notifications, newest first. POST: mark one read (`id`, then follow its link) or all (`all`)."""
    user = _signed_in(request)
    if request.method == "POST":
        raw_id = request.POST.get("id", "")
        if raw_id.isdigit() and len(raw_id) < 19:
            notifications_mark_read(user=user, ids=[int(raw_id)])
            link = Notification.objects.filter(recipient=user, pk=int(raw_id)).values_list("link", flat=True).first()
            if link and url_has_allowed_host_and_scheme(link, allowed_hosts=None):
                return redirect(link)
        elif request.POST.get("all"):
            marked = notifications_mark_read(user=user)
            messages.success(request, f"Marked {marked} notification{'s' if marked != 1 else ''} read.")
        return redirect("notifications")
    page = Paginator(user_notifications(user=user), NOTIFICATIONS_PER_PAGE).get_page(request.GET.get("page"))
    return render(request, "accounts/notifications.html", {"page": page})


@login_required
@require_http_methods(["GET", "POST"])
def notification_settings_view(request: HttpRequest) -> HttpResponse:
    """E-mail per kind of notification: immediately, in the daily digest, or off."""
    user = _signed_in(request)
    if request.method == "POST":
        for kind in Notification.Kind.values:
            delivery = request.POST.get(kind)
            if delivery in NotificationPreference.Delivery.values:
                notification_preference_set(user=user, kind=kind, delivery=delivery)
        messages.success(request, "Your e-mail preferences are saved.")
        return redirect("notification-settings")
    chosen = notification_preferences(user=user)
    rows = [(kind, label, chosen[kind]) for kind, label in Notification.Kind.choices]
    context = {"rows": rows, "deliveries": NotificationPreference.Delivery.choices, "has_email": bool(user.email)}
    return render(request, "accounts/notification_settings.html", context)


# A mail client's one-click unsubscribe (RFC 8058) POSTs with no session and no CSRF token: the signed token
# is the credential, and the only thing it can do is turn mail off.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe_view(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the link turns off, with one button. POST: turn it off (no login needed)."""
    found = unsubscribe_token_read(token)
    if found is None:
        return render(request, "accounts/unsubscribe.html", {"invalid": True}, status=400)
    label = "every notification e-mail" if found.kind == ALL_KINDS else Notification.Kind(found.kind).label.lower()
    done = False
    if request.method == "POST":
        unsubscribe_apply(token=token)
        done = True
    return render(request, "accounts/unsubscribe.html", {"label": label, "done": done, "token": token})


@login_required
@require_POST
def user_follow_view(request: HttpRequest, username: str) -> HttpResponse:
    """Follow (`following=yes`) or unfollow someone, from their profile."""
    user = _signed_in(request)
    followed = get_object_or_404(User, username=username, is_active=True)
    try:
        if request.POST.get("following") == "yes":
            user_follow(follower=user, followed=followed)
        else:
            user_unfollow(follower=user, followed=followed)
    except DomainError as error:
        messages.error(request, error.message)
    return redirect("forecast:user-profile", username=followed.username)
