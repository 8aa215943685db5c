"""Reads of the accounts app that pages and the API need."""

from decimal import Decimal

from accounts.models import Account, User
from accounts.money import ZERO
from accounts.services import wallet_key


def user_balance(*, user: User) -> Decimal:
    """The user's wallet balance (zero for a user created without a wallet)."""
    balance = Account.objects.filter(key=wallet_key(user.pk)).values_list("balance", flat=True).first()
    return balance if balance is not None else ZERO
