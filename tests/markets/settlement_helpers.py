"""Shared helpers for the resolution and settlement tests: markets with traders, and the payouts
each user should receive, computed independently of the SQL in markets.services.settlement."""

from decimal import ROUND_FLOOR, Decimal

from accounts.models import Account, User
from accounts.money import CREDIT_QUANTUM, ZERO
from markets.models import Market, Position
from markets.services import trade_execute
from tests.factories import trade_request


def buy(user: User, market: Market, code: str, amount: str) -> None:
    trade_execute(user=user, market=market, request=trade_request(code, "buy", amount=amount))


def sell(user: User, market: Market, code: str, shares: str) -> None:
    trade_execute(user=user, market=market, request=trade_request(code, "sell", shares=shares))


def balances(users: list[User]) -> dict[int, Decimal]:
    return dict(Account.objects.filter(user__in=users).values_list("user_id", "balance"))


def expected_payouts(*, market: Market, kind: str, per_share: list[Decimal] | None) -> dict[int, Decimal]:
    """What each trader should get from this resolution alone, rounded down per user."""
    totals: dict[int, Decimal] = {}
    for user_id, index, shares, net_cost in Position.objects.filter(market=market).values_list(
        "user_id", "outcome__index", "shares", "net_cost"
    ):
        if kind == "annulled":
            totals[user_id] = totals.get(user_id, ZERO) + net_cost
        else:
            assert per_share is not None
            totals[user_id] = totals.get(user_id, ZERO) + shares * per_share[index]
    return {
        user_id: max(total, ZERO).quantize(CREDIT_QUANTUM, rounding=ROUND_FLOOR) for user_id, total in totals.items()
    }
