"""The signed-in user's balance, for the navigation bar of every page."""

from decimal import Decimal

from django import template

from accounts.models import Account, User

register = template.Library()


@register.simple_tag
def wallet_balance(user: User) -> Decimal | None:
    """The signed-in user's balance for the navigation bar (one small query)."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Account.objects.filter(user_id=user.pk).values_list("balance", flat=True).first()
