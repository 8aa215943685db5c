"""What a locked-out login attempt gets back (django-axes' AXES_LOCKOUT_CALLABLE), and the way out.

Axes counts failed logins per username and per client address on the website login, the admin login and
the token endpoint (all three go through django.contrib.auth.authenticate with the request). Once either
count reaches AXES_FAILURE_LIMIT, the attempt is refused before the password is checked, and this answers
it: the API's error shape under /api/, a page elsewhere, both with a 429, a Retry-After and the wait in
minutes. A password reset by e-mail clears the account's failures (accounts.services.user_password_changed).
"""

import math
from typing import Any

from axes.helpers import get_cool_off
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from config.core.api import API_PREFIX, error_body


def lockout_minutes(request: HttpRequest | None = None) -> int:
    cool_off = get_cool_off(request)
    return max(1, math.ceil(cool_off.total_seconds() / 60)) if cool_off else 1


def lockout_message(minutes: int) -> str:
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many attempts, try again in {minutes} {unit}."


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    minutes = lockout_minutes(request)
    message = lockout_message(minutes)
    headers = {"Retry-After": str(minutes * 60)}
    if request.path.startswith(API_PREFIX):
        return JsonResponse(error_body("too_many_attempts", message), status=429, headers=headers)
    response = render(request, "registration/locked_out.html", {"message": message}, status=429)
    response["Retry-After"] = headers["Retry-After"]
    return response
