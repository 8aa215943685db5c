"""Request types for the website views, so mypy knows about django-htmx and signed-in users."""

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails

from accounts.models import User


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


class AuthedHttpRequest(HtmxHttpRequest):
    """A request behind login_required or staff_member_required."""

    user: User
