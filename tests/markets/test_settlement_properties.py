"""Random sequences of resolve / re-resolve / annul (some superseded before they settle), settled
synchronously: after every settlement the books balance and every trader holds exactly what the last
resolution alone would have given them."""

from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.models import Account
from accounts.money import ZERO
from accounts.services import system_account
from markets.models import Market
from markets.services import market_resolve, market_settle, markets_reconcile
from tests.hypothesis_profiles import examples
from tests.markets.settlement_helpers import balances, buy, expected_payouts, sell

pytestmark = pytest.mark.django_db

OUTCOMES = 3


@st.composite
def resolutions(draw: st.DrawFn) -> tuple[str, object, bool]:
    kind = draw(st.sampled_from(["outcome", "split", "annulled"]))
    settle_now = draw(st.booleans() | st.just(True))
    if kind == "outcome":
        return kind, draw(st.integers(0, OUTCOMES - 1)), settle_now
    if kind == "annulled":
        return kind, None, settle_now
    weights = draw(st.lists(st.integers(0, 1000), min_size=OUTCOMES, max_size=OUTCOMES).filter(lambda w: sum(w) > 0))
    quantum = Decimal("0.000001")
    shares = [(Decimal(w) / sum(weights)).quantize(quantum, rounding="ROUND_FLOOR") for w in weights[:-1]]
    return kind, [*shares, Decimal(1) - sum(shares)], settle_now


def escrow_before_settlement(market: Market) -> Decimal:
    return market.subsidy + sum((t.amount if t.side == "buy" else -t.amount for t in market.trades.all()), start=ZERO)


@pytest.mark.slow
@settings(max_examples=examples(30), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    steps=st.lists(resolutions(), min_size=1, max_size=6), amounts=st.lists(st.integers(1, 200), min_size=4, max_size=4)
)
def test_random_resolution_sequences_keep_the_books_right(make_user, make_market, db, steps, amounts):
    with transaction.atomic():
        staff = make_user("staff", is_staff=True)
        users = [make_user(f"trader{i}") for i in range(3)]
        market = make_market("property", created_by=staff, outcomes=OUTCOMES)
        buy(users[0], market, "O0", str(amounts[0]))
        buy(users[1], market, "O1", str(amounts[1]))
        buy(users[2], market, "O2", str(amounts[2]))
        buy(users[0], market, "O1", str(amounts[3]))
        sell(users[0], market, "O0", "1")
        market.refresh_from_db()
        before = balances(users)
        house = system_account(kind=Account.Kind.HOUSE)
        house_before = house.balance
        in_escrow = escrow_before_settlement(market)

        current, current_settled = None, False
        for index, (kind, detail, settle_now) in enumerate(steps):
            last = index == len(steps) - 1
            # Recording the resolution the market already has is a no-op (market_resolve returns it).
            repeated = (kind, detail) == current
            if not repeated:
                current, current_settled = (kind, detail), False
            if kind == "outcome":
                code = f"O{detail}"
                market_resolve(market=market, user=staff, kind=kind, outcome_code=code, reason=f"step {index}")
                per_share = [Decimal(1) if i == detail else ZERO for i in range(OUTCOMES)]
            elif kind == "split":
                market_resolve(market=market, user=staff, kind=kind, split=detail, reason=f"step {index}")
                per_share = list(detail)
            else:
                market_resolve(market=market, user=staff, kind=kind, reason=f"step {index}")
                per_share = None
            if not (settle_now or last):
                continue
            settled = market_settle(market_id=market.pk)
            assert (settled is None) == (repeated and current_settled)
            current_settled = True
            expected = expected_payouts(market=market, kind=kind, per_share=per_share)
            after = balances(users)
            assert {u.pk: after[u.pk] - before[u.pk] for u in users} == expected
            house.refresh_from_db()
            assert house.balance - house_before == in_escrow - sum(expected.values())
            market.refresh_from_db()
            assert market.escrow.balance == ZERO
            assert market.status == (Market.Status.ANNULLED if kind == "annulled" else Market.Status.RESOLVED)
            assert markets_reconcile() == []
        transaction.set_rollback(True)
