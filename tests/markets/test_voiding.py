"""Late trades are void (markets.services.voiding): a resolution with `known_at` undoes every trade after it
before settlement, by compensating entries, and the market, positions, escrow and wallets are then exactly
those of a twin market that only ever saw the trades up to `known_at` (the replay)."""

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import Account, LedgerEntry, LedgerTransaction, User
from accounts.money import ZERO
from accounts.services import ledger_post_set, system_account
from forecast.models import MarketScore
from forecast.services import market_score
from markets.errors import InsufficientFunds, InsufficientShares, InvalidInput
from markets.locks import market_lock
from markets.models import Market, Position, Resolution, Trade
from markets.services import market_resolve, market_settle, markets_reconcile, trade_execute
from markets.services.voiding import late_trades_void
from tests.factories import trade_request
from tests.hypothesis_profiles import examples

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


def trade(user: User, market: Market, code: str, side: str, at: datetime, **quantity: str) -> Trade:
    return trade_execute(user=user, market=market, request=trade_request(code, side, **quantity), now=at).trade


def wallet(user: User) -> Decimal:
    return Account.objects.get(user=user).balance


def escrow(market: Market) -> Decimal:
    return Account.objects.get(pk=market.escrow_id).balance


def state(market: Market) -> tuple[list[Decimal], list[float], Decimal]:
    market = Market.objects.get(pk=market.pk)
    outcomes = list(market.outcomes.order_by("index"))
    return [o.shares_outstanding for o in outcomes], [o.probability for o in outcomes], market.volume


@pytest.fixture
def start():
    return timezone.now() - 10 * HOUR


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


def test_the_trades_after_known_at_are_voided_and_the_market_is_as_at_known_at(make_market, make_user, resolver, start):
    market = make_market("late", created_by=resolver, now=start, outcomes=3)
    twin = make_market("twin", created_by=resolver, now=start, outcomes=3)
    ana, ben, ana2, ben2 = (make_user(name) for name in ("ana", "ben", "ana2", "ben2"))
    for target, a, b in ((market, ana, ben), (twin, ana2, ben2)):
        trade(a, target, "O0", "buy", start + HOUR, amount="40")
        trade(b, target, "O1", "buy", start + 2 * HOUR, amount="25")
    known_at = start + 3 * HOUR
    # Only the market sees the late trades: a buy, a sale of shares bought early, a newcomer.
    trade(ben, market, "O2", "buy", start + 4 * HOUR, amount="30")
    trade(ana, market, "O0", "sell", start + 5 * HOUR, shares="10")
    carol = make_user("carol")
    carol_before = wallet(carol)
    trade(carol, market, "O0", "buy", start + 6 * HOUR, amount="15")

    resolution = market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="O0", reason="Known early.", known_at=known_at
    )
    with transaction.atomic():
        market_lock(market_id=market.pk)
        voided = late_trades_void(market=market, resolution=resolution, now=timezone.now(), shortfalls_paid_by=None)
        assert voided.trade_count == 3
        assert voided.posting is not None
        ledger_post_set(postings=[voided.posting])

    (q, probabilities, volume), (twin_q, twin_probabilities, twin_volume) = state(market), state(twin)
    assert (q, volume) == (twin_q, twin_volume)
    assert probabilities == pytest.approx(twin_probabilities, rel=1e-12, abs=1e-15)
    assert escrow(market) == escrow(twin)
    assert (wallet(ana), wallet(ben), wallet(carol)) == (wallet(ana2), wallet(ben2), carol_before)
    positions = {(p.user_id, p.outcome.code): (p.shares, p.net_cost) for p in Position.objects.filter(market=market)}
    twin_positions = {
        ({ana2.pk: ana.pk, ben2.pk: ben.pk}[p.user_id], p.outcome.code): (p.shares, p.net_cost)
        for p in Position.objects.filter(market=twin)
    }
    assert {key: value for key, value in positions.items() if value != (ZERO, ZERO)} == twin_positions
    late = Trade.objects.filter(market=market, created_at__gt=known_at)
    assert late.count() == 3
    assert all(t.voided_at is not None and t.voided_by_id == resolution.pk for t in late)
    assert not Trade.objects.filter(market=market, created_at__lte=known_at, voided_at__isnull=False).exists()
    void = LedgerTransaction.objects.get(reference=f"void:{resolution.pk}")
    assert void.kind == LedgerTransaction.Kind.VOID
    assert sum(LedgerEntry.objects.filter(transaction=void).values_list("amount", flat=True)) == ZERO


def test_settlement_voids_first_pays_once_and_scores_only_forecasts_up_to_known_at(
    make_market, make_user, resolver, start
):
    market = make_market("settled-late", created_by=resolver, now=start)
    ana, ben, carol = make_user("ana"), make_user("ben"), make_user("carol")
    trade(ana, market, "YES", "buy", start + HOUR, amount="40")
    trade(ben, market, "NO", "buy", start + 2 * HOUR, amount="20")
    known_at = start + 3 * HOUR
    trade(carol, market, "YES", "buy", start + 4 * HOUR, amount="50")
    carol_before_late = wallet(carol) + Decimal("50")
    market_resolve(market=market, user=resolver, kind="outcome", outcome_code="YES", reason="Known.", known_at=known_at)
    result = market_settle(market_id=market.pk)
    assert result is not None
    assert result.voided_trades == 1
    assert market_settle(market_id=market.pk) is None
    assert wallet(carol) == carol_before_late
    assert Trade.objects.get(user=carol).voided_at is not None
    assert Account.objects.get(pk=market.escrow_id).balance == ZERO
    assert markets_reconcile() == []

    market_score(market_id=market.pk)
    scored = set(MarketScore.objects.filter(market=market).values_list("user_id", flat=True))
    assert scored == {ana.pk, ben.pk}


def test_a_re_resolution_never_revives_voided_trades_and_an_earlier_known_at_voids_more(
    make_market, make_user, resolver, start
):
    """docs/settlement.md, "Re-resolving a market whose trades were voided": voiding is one-way."""

    def settle() -> int:
        result = market_settle(market_id=market.pk)
        assert result is not None
        return result.voided_trades

    market = make_market("re-resolved-late", created_by=resolver, now=start)
    ana, ben, carol, dan = (make_user(name) for name in ("ana", "ben", "carol", "dan"))
    trade(ana, market, "YES", "buy", start + HOUR, amount="40")
    trade(ben, market, "NO", "buy", start + 3 * HOUR, amount="20")
    trade(carol, market, "YES", "buy", start + 5 * HOUR, amount="30")
    trade(dan, market, "NO", "buy", start + 7 * HOUR, amount="10")
    first = market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="YES", reason="Known.", known_at=start + 4 * HOUR
    )
    assert settle() == 2  # carol's and dan's
    carol_wallet, state_after_first = wallet(carol), state(market)

    # A later known_at: carol's trade (between the two) is not revived; nothing more is voided.
    later = market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="NO", reason="Later.", known_at=start + 6 * HOUR
    )
    assert settle() == 0
    assert Trade.objects.get(user=carol).voided_by_id == first.pk
    assert Position.objects.get(user=carol).shares == ZERO
    assert wallet(carol) == carol_wallet  # refunded once, paid nothing: her shares were voided
    assert state(market) == state_after_first
    assert markets_reconcile() == []

    # An earlier known_at voids what the first left standing (ben's trade), under the new resolution.
    earlier = market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="YES", reason="Earlier.", known_at=start + 2 * HOUR
    )
    assert settle() == 1
    voided_by = dict(Trade.objects.filter(market=market).values_list("user__username", "voided_by_id"))
    assert voided_by == {"ana": None, "ben": earlier.pk, "carol": first.pk, "dan": first.pk}
    assert later.pk not in voided_by.values()
    assert markets_reconcile() == []


def test_a_voided_sale_whose_proceeds_were_spent_is_written_off_to_the_house(make_market, make_user, resolver, start):
    market = make_market("spent", created_by=resolver, now=start)
    elsewhere = make_market("elsewhere", created_by=resolver, now=start)
    dana = make_user("dana")
    ben = make_user("ben")
    trade(dana, market, "YES", "buy", start + HOUR, amount="100")
    trade(ben, market, "NO", "buy", start + 90 * timedelta(minutes=1), amount="10")
    known_at = start + 2 * HOUR
    proceeds = trade(dana, market, "YES", "sell", start + 3 * HOUR, shares="50").amount
    # Dana spends (nearly) everything she has, the proceeds included, in another market.
    trade(dana, elsewhere, "YES", "buy", start + 4 * HOUR, amount=str(wallet(dana)))
    leftover = wallet(dana)
    assert leftover < proceeds
    escrow_before_late = escrow(market) + proceeds
    house = system_account(kind=Account.Kind.HOUSE)
    market_resolve(market=market, user=resolver, kind="outcome", outcome_code="NO", reason="No.", known_at=known_at)
    house_before = Account.objects.get(pk=house.pk).balance

    result = market_settle(market_id=market.pk)
    assert result is not None
    assert result.voided_trades == 1
    assert result.written_off == proceeds - leftover
    # Dana kept her shares (the sale never happened) and NO won: she is at zero, not below.
    assert wallet(dana) == ZERO
    assert Position.objects.get(user=dana, market=market).shares > 0
    # The escrow got the whole sale back before paying out; the house covered what Dana could not.
    resolution = Resolution.objects.get(market=market, is_current=True)
    assert resolution.paid_total + resolution.released_total == escrow_before_late
    house_after = Account.objects.get(pk=house.pk).balance
    assert house_after - house_before == resolution.released_total - result.written_off
    assert markets_reconcile() == []


def test_reconciliation_finds_a_voided_trade_that_was_not_paid_back(make_market, make_user, resolver, start):
    market = make_market("unpaid", created_by=resolver, now=start)
    carol = make_user("carol")
    trade(carol, market, "YES", "buy", start + 4 * HOUR, amount="5")
    market_resolve(
        market=market, user=resolver, kind="outcome", outcome_code="YES", reason="Known.", known_at=start + HOUR
    )
    market_settle(market_id=market.pk)
    assert markets_reconcile() == []
    LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.VOID).update(reference="tampered")
    assert "void_paid_once" in [violation.invariant for violation in markets_reconcile()]


def test_the_trader_sees_the_voided_trade(make_market, make_user, resolver, start, client):
    market = make_market("told", created_by=resolver, now=start)
    carol = make_user("carol")
    trade(carol, market, "YES", "buy", start + 4 * HOUR, amount="5")
    market_resolve(
        market=market,
        user=resolver,
        kind="outcome",
        outcome_code="YES",
        reason="Known.",
        known_at=start + HOUR,
    )
    market_settle(market_id=market.pk)
    api = APIClient()
    api.force_login(carol)
    rows = api.get("/api/v1/me/trades/").json()["results"]
    assert rows[0]["voided_at"] is not None
    client.force_login(carol)
    page = client.get("/portfolio/").content.decode()
    assert "Voided" in page


OUTCOMES = ("O0", "O1", "O2")


@st.composite
def trade_sequences(draw: st.DrawFn) -> tuple[list[tuple[int, str, str, int]], int]:
    """(trader, outcome, side, amount or shares) steps, and how many of them come before known_at."""
    steps = draw(
        st.lists(
            st.tuples(
                st.integers(0, 2),
                st.sampled_from(OUTCOMES),
                st.sampled_from(["buy", "buy", "sell"]),
                st.integers(1, 80),
            ),
            min_size=1,
            max_size=12,
        )
    )
    return steps, draw(st.integers(0, len(steps)))


@pytest.mark.slow
@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=trade_sequences(), liquidity=st.sampled_from([10, 50, 200]))
def test_voiding_the_tail_restores_the_state_at_known_at_exactly(make_user, make_market, db, sequence, liquidity):
    """LMSR cost is path-independent: after voiding, q, the probabilities, every position, the escrow and
    every wallet equal those of a replay of the trades up to known_at alone."""
    steps, cut = sequence
    start = timezone.now() - 100 * HOUR
    with transaction.atomic():
        resolver = make_user("resolver", is_staff=True)
        market = make_market("voided", created_by=resolver, now=start, outcomes=3, liquidity=liquidity)
        replay = make_market("replay", created_by=resolver, now=start, outcomes=3, liquidity=liquidity)
        traders = [make_user(f"t{index}") for index in range(3)]
        twins = [make_user(f"r{index}") for index in range(3)]
        for index, (who, code, side, quantity) in enumerate(steps):
            at = start + (index + 1) * HOUR
            request = {"amount": str(quantity)} if side == "buy" else {"shares": str(quantity)}
            targets = [(market, traders[who])] + ([(replay, twins[who])] if index < cut else [])
            for target, user in targets:
                try:
                    trade(user, target, code, side, at, **request)
                except (InsufficientShares, InsufficientFunds, InvalidInput):
                    # Refused in the replay too (it saw the same trades so far): nothing happened in either.
                    break
        known_at = start + cut * HOUR + timedelta(minutes=30)
        resolution = market_resolve(
            market=market, user=resolver, kind="annulled", reason="Property.", known_at=known_at
        )
        with transaction.atomic():
            market_lock(market_id=market.pk)
            voided = late_trades_void(market=market, resolution=resolution, now=timezone.now(), shortfalls_paid_by=None)
            if voided.posting is not None:
                ledger_post_set(postings=[voided.posting])

        (q, probabilities, _), (replay_q, replay_probabilities, _) = state(market), state(replay)
        assert q == replay_q
        # The same q priced by the same LMSR; the trade path computed its floats on another route, so the
        # last bits may differ (the design's bound is 1e-9 relative).
        assert probabilities == pytest.approx(replay_probabilities, rel=1e-12, abs=1e-15)
        assert escrow(market) == escrow(replay)
        assert [wallet(user) for user in traders] == [wallet(user) for user in twins]
        held = {
            (traders.index(p.user), p.outcome.code): (p.shares, p.net_cost)
            for p in Position.objects.filter(market=market).select_related("user", "outcome")
            if (p.shares, p.net_cost) != (ZERO, ZERO)
        }
        replayed = {
            (twins.index(p.user), p.outcome.code): (p.shares, p.net_cost)
            for p in Position.objects.filter(market=replay).select_related("user", "outcome")
            if (p.shares, p.net_cost) != (ZERO, ZERO)
        }
        assert held == replayed
        assert markets_reconcile() == []
        transaction.set_rollback(True)
