"""Reads of the accounts app that pages and the API need."""

from decimal import Decimal

from accounts.models import Account, User
from accounts.money import ZERO
from accounts.services import reserved_key, wallet_key


def user_balance(*, user: User) -> Decimal:
    """The user's wallet balance (zero for a user created without a wallet)."""
    balance = Account.objects.filter(key=wallet_key(user.pk)).values_list("balance", flat=True).first()
    return balance if balance is not None else ZERO


def user_reserved(*, user: User) -> Decimal:
    """Credits the user's open buy orders hold in their reserved account (not spendable until released)."""
    balance = Account.objects.filter(key=reserved_key(user.pk)).values_list("balance", flat=True).first()
    return balance if balance is not None else ZERO
