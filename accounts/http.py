"""The request type of a signed-in page, so mypy knows its user is accounts' User.

It lives with the user model rather than in config.core.http: the bottom layer knows no app."""

from accounts.models import User
from config.core.http import HtmxHttpRequest


class AuthedHttpRequest(HtmxHttpRequest):
    """A request behind login_required or staff_member_required."""

    user: User
