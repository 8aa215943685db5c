"""What the limit-order and standing-forecast tests share: a user's reserve, the Yes price, an API client."""

from decimal import Decimal

from rest_framework.test import APIClient

from accounts.models import Account, User
from accounts.services import api_key_create
from markets.models import Market, Outcome


def reserved(user: User) -> Decimal:
    """The balance of the user's reserved account (what their open buy orders hold), zero before its first use."""
    account = Account.objects.filter(key=f"reserved:{user.pk}").first()
    return account.balance if account else Decimal(0)


def yes_price(market: Market) -> float:
    return Outcome.objects.get(market=market, code="YES").probability


def key_client(user: User, scopes: list[str] | None = None) -> APIClient:
    """An API client that sends a new key of the user's (with these scopes, else the default ones)."""
    _key, raw = api_key_create(user=user, name="tests", scopes=scopes or None)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
    return client
