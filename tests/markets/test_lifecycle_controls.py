"""The staff controls on a live market, as services against PostgreSQL: each changes what it says, writes
its MarketEvent (who, when, what, why) and leaves every ledger invariant holding."""

import math
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from accounts.money import ZERO
from accounts.services import system_account
from markets import lmsr
from markets.errors import InvalidInput, MarketHalted, MarketStateError
from markets.models import Market, MarketEvent, Outcome, Position, PricePoint
from markets.pricing import lmsr_state
from markets.services import (
    market_close,
    market_halt,
    market_liquidity_add,
    market_outcome_add,
    market_quote,
    market_reschedule,
    market_resolve,
    market_resume,
    market_settle,
    market_update,
    markets_close_due,
    markets_reconcile,
    trade_execute,
)
from markets.services.lifecycle import escrow_required
from tests.factories import trade_request
from tests.markets.settlement_helpers import buy, sell

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("controller", is_staff=True)


@pytest.fixture
def traders(make_user):
    return [make_user(f"trader{i}") for i in range(3)]


def prices(market: Market) -> list[float]:
    return list(Outcome.objects.filter(market=market).order_by("index").values_list("probability", flat=True))


def escrow(market: Market) -> Decimal:
    return Account.objects.get(pk=market.escrow_id).balance


def house() -> Decimal:
    return system_account(kind=Account.Kind.HOUSE).balance


def worst_from_here(market: Market) -> Decimal:
    """max_i (s_i + b ln(1/p_i)), computed from the market's rows independently of the service."""
    market.refresh_from_db()
    outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
    b = float(market.liquidity)
    current = lmsr.prices(lmsr_state(b, outcomes), b)
    return Decimal(
        repr(max(float(o.shares_outstanding) - b * math.log(p) for o, p in zip(outcomes, current, strict=True)))
    )


# Halt and resume.


def test_a_halted_market_refuses_trades_with_the_reason_and_resumes(make_market, traders, staff):
    market = make_market()
    buy(traders[0], market, "YES", "10")
    market_halt(market=market, user=staff, reason="The question's source is down; checking.")
    with pytest.raises(MarketHalted) as refused:
        buy(traders[1], market, "YES", "10")
    assert refused.value.code == "market_halted"
    assert "The question's source is down; checking." in refused.value.message
    with pytest.raises(MarketHalted):
        sell(traders[0], market, "YES", "1")
    market.refresh_from_db()
    assert market.is_halted
    assert not market.is_tradeable(timezone.now())
    assert market.status == Market.Status.OPEN

    market_resume(market=market, user=staff, reason="Source is back.")
    buy(traders[1], market, "YES", "10")
    market.refresh_from_db()
    assert not market.is_halted
    assert market.halt_reason == ""
    events = list(MarketEvent.objects.filter(market=market).order_by("created_at", "id"))
    assert [(e.kind, e.actor, e.reason) for e in events] == [
        (MarketEvent.Kind.HALTED, staff, "The question's source is down; checking."),
        (MarketEvent.Kind.RESUMED, staff, "Source is back."),
    ]
    assert markets_reconcile() == []


def test_halt_needs_a_reason_and_an_open_unhalted_market(make_market, staff):
    market = make_market()
    with pytest.raises(InvalidInput) as missing:
        market_halt(market=market, user=staff, reason="  ")
    assert missing.value.field == "reason"
    with pytest.raises(MarketStateError):
        market_resume(market=market, user=staff)
    market_halt(market=market, user=staff, reason="Checking.")
    with pytest.raises(MarketStateError):
        market_halt(market=market, user=staff, reason="Again.")
    market_close(market=market, user=staff, reason="Done.")
    with pytest.raises(MarketStateError):
        market_halt(market=market, user=staff, reason="Closed now.")
    assert MarketEvent.objects.filter(market=market).count() == 2


def test_a_halted_market_still_closes_at_its_time(make_market, staff):
    market = make_market()
    market_halt(market=market, user=staff, reason="Checking.")
    assert markets_close_due(now=market.closes_at + timedelta(seconds=1)) == 1
    market.refresh_from_db()
    assert market.status == Market.Status.CLOSED
    assert not market.is_halted


# Close early and move the close.


def test_closing_early_stops_trading_and_is_audited(make_market, traders, staff):
    market = make_market()
    scheduled = market.closes_at
    market_close(market=market, user=staff, reason="The answer is known.")
    market.refresh_from_db()
    assert market.status == Market.Status.CLOSED
    assert market.closed_at is not None
    event = MarketEvent.objects.get(market=market)
    assert (event.kind, event.actor, event.reason) == (MarketEvent.Kind.CLOSED, staff, "The answer is known.")
    assert event.data == {"scheduled_close": scheduled.isoformat()}
    with pytest.raises(MarketStateError):
        market_close(market=market, user=staff, reason="Twice.")


def test_staff_closing_early_must_say_why_but_the_clock_need_not(make_market, staff):
    market = make_market()
    with pytest.raises(InvalidInput):
        market_close(market=market, user=staff, reason="")
    market_close(market=market)
    assert not MarketEvent.objects.filter(market=market).exists()


def test_extending_the_close_is_audited_with_both_times(make_market, staff):
    market = make_market()
    before = market.closes_at
    later = before + timedelta(days=10)
    market_reschedule(market=market, closes_at=later, changed_by=staff, reason="The vote was postponed.")
    market.refresh_from_db()
    assert market.closes_at == later
    event = MarketEvent.objects.get(market=market)
    assert event.kind == MarketEvent.Kind.CLOSE_MOVED
    assert event.reason == "The vote was postponed."
    assert event.close_times() == (before, later)
    with pytest.raises(InvalidInput):
        market_reschedule(market=market, closes_at=timezone.now() - timedelta(hours=1), changed_by=staff)


# Add liquidity.


@pytest.fixture
def traded_multiple(make_market, traders):
    market = make_market(kind=Market.Kind.MULTIPLE, liquidity=50)
    buy(traders[0], market, "RUTTE", "60")
    buy(traders[1], market, "KALLAS", "25")
    buy(traders[2], market, "RUTTE", "15")
    sell(traders[0], market, "RUTTE", "5")
    return market


def test_adding_liquidity_keeps_prices_and_positions_and_the_house_pays_the_cover(traded_multiple, staff):
    market = traded_multiple
    before_prices = prices(market)
    positions = list(Position.objects.filter(market=market).order_by("pk").values_list("shares", "net_cost"))
    escrow_before, house_before = escrow(market), house()

    event = market_liquidity_add(market=market, user=staff, liquidity="200", reason="Too jumpy for its volume.")

    market.refresh_from_db()
    assert market.liquidity == Decimal("200")
    assert prices(market) == pytest.approx(before_prices, abs=1e-12)
    assert list(Position.objects.filter(market=market).order_by("pk").values_list("shares", "net_cost")) == positions
    paid = escrow(market) - escrow_before
    assert paid > ZERO
    assert house_before - house() == paid
    assert Decimal(event.data["subsidy"]) == paid
    assert event.data["liquidity_from"] == "50.0000"
    assert event.data["liquidity_to"] == "200.0000"
    assert LedgerTransaction.objects.get(reference=f"liquidity:{event.pk}").kind == LedgerTransaction.Kind.SUBSIDY
    # The cover: the escrow pays every share of any outcome after the maker's worst move from here.
    assert escrow(market) >= worst_from_here(market)
    # Raising b by 150 needs at most 150 * ln(1 / min p) more (docs/trading.md).
    assert paid <= Decimal(repr(150 * math.log(1 / min(before_prices)))) + Decimal("0.000002")
    assert markets_reconcile() == []


def test_after_adding_liquidity_trades_price_as_a_fresh_market_at_the_new_b(traded_multiple, staff, make_market):
    market = traded_multiple
    market_liquidity_add(market=market, user=staff, liquidity="300", reason="Deeper.")
    fresh = make_market(kind=Market.Kind.MULTIPLE, liquidity=300, initial_probabilities=prices(market))
    for code in ("RUTTE", "OTHER"):
        request = trade_request(code, "buy", shares="40")
        assert market_quote(market=market, request=request).amount == pytest.approx(
            market_quote(market=fresh, request=request).amount, abs=Decimal("0.000002")
        )


def test_after_adding_liquidity_the_escrow_pays_every_winner_in_full(traded_multiple, staff, traders, make_user):
    """Drive the new outcome to the top with big buys, resolve to it: settlement needs nothing from the house."""
    market = traded_multiple
    market_liquidity_add(market=market, user=staff, liquidity="120", reason="Deeper.")
    whale = make_user("whale")
    buy(whale, market, "IOHANNIS", "900")
    assert escrow(market) >= worst_from_here(market)
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="IOHANNIS", reason="He won.")
    result = market_settle(market_id=market.pk)
    assert result is not None
    assert result.released_total >= ZERO
    assert markets_reconcile() == []


def test_liquidity_must_rise_and_the_market_be_open(make_market, staff):
    market = make_market(liquidity=100)
    for value in ("100", "99", "-5", "abc"):
        with pytest.raises(InvalidInput) as refused:
            market_liquidity_add(market=market, user=staff, liquidity=value, reason="More.")
        assert refused.value.field == "liquidity"
    market_close(market=market, user=staff, reason="Closed.")
    with pytest.raises(MarketStateError):
        market_liquidity_add(market=market, user=staff, liquidity="200", reason="More.")
    assert not MarketEvent.objects.filter(kind=MarketEvent.Kind.LIQUIDITY_ADDED).exists()


def test_a_new_market_already_holds_its_cover(make_market):
    """The bound the liquidity control tops up to holds from the opening on, so at the same b it adds nothing."""
    market = make_market(kind=Market.Kind.MULTIPLE, liquidity=80, initial_probabilities=[0.5, 0.2, 0.1, 0.1, 0.1])
    outcomes = list(market.outcomes.order_by("index"))
    assert escrow_required(liquidity=80.0, outcomes=outcomes) <= escrow(market)


# Add an outcome.


def test_adding_an_outcome_scales_the_other_prices_and_keeps_every_position(traded_multiple, staff):
    market = traded_multiple
    before = prices(market)
    shares_before = list(Position.objects.filter(market=market).order_by("pk").values_list("shares", flat=True))

    added = market_outcome_add(
        market=market, user=staff, code="FREDERIKSEN", label="Mette Frederiksen", probability="0.1", reason="Named."
    )

    after = prices(market)
    assert added.index == 5
    assert added.shares_outstanding == ZERO
    assert after[:5] == pytest.approx([p * 0.9 for p in before], abs=1e-12)
    assert after[5] == pytest.approx(0.1, abs=1e-12)
    assert math.fsum(after) == pytest.approx(1.0, abs=1e-12)
    assert list(Position.objects.filter(market=market).order_by("pk").values_list("shares", flat=True)) == (
        shares_before
    )
    point = PricePoint.objects.filter(market=market).latest("id")
    assert point.probabilities == pytest.approx(after)
    event = MarketEvent.objects.get(market=market, kind=MarketEvent.Kind.OUTCOME_ADDED)
    assert event.data["code"] == "FREDERIKSEN"
    assert event.reason == "Named."
    assert escrow(market) >= worst_from_here(market)
    assert markets_reconcile() == []


def test_the_added_outcome_trades_settles_and_scores(traded_multiple, staff, make_user):
    from forecast.models import MarketScore
    from forecast.services import market_score

    market = traded_multiple
    market_outcome_add(market=market, user=staff, code="NEW", label="Someone new", probability="0.05", reason="New.")
    backer = make_user("backer")
    buy(backer, market, "NEW", "30")
    shares = Position.objects.get(user=backer, outcome__code="NEW").shares
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NEW", reason="Surprise.")
    market_settle(market_id=market.pk)
    assert backer.wallet.__class__.objects.get(pk=backer.wallet.pk).balance == Decimal("970") + shares
    assert markets_reconcile() == []
    market_score(market_id=market.pk)
    assert MarketScore.objects.filter(market=market).count() == 4


def test_an_outcome_is_added_only_to_an_open_multiple_choice_market(make_market, staff):
    binary = make_market()
    with pytest.raises(MarketStateError):
        market_outcome_add(market=binary, user=staff, code="MAYBE", label="Maybe", probability="0.1", reason="No.")
    multiple = make_market(kind=Market.Kind.MULTIPLE)
    for fields, field in (
        ({"code": "RUTTE"}, "code"),
        ({"code": "bad code"}, "code"),
        ({"label": ""}, "label"),
        ({"probability": "0.6"}, "probability"),
        ({"probability": "0"}, "probability"),
        ({"probability": "0.0001"}, "probability"),
        ({"reason": ""}, "reason"),
    ):
        arguments = {"code": "NEW", "label": "New", "probability": "0.1", "reason": "Why."} | fields
        with pytest.raises(InvalidInput) as refused:
            market_outcome_add(
                market=multiple,
                user=staff,
                code=arguments["code"],
                label=arguments["label"],
                probability=arguments["probability"],
                reason=arguments["reason"],
            )
        assert refused.value.field == field
    assert multiple.outcomes.count() == 5


# Text edits and their revision history.


def test_an_edit_keeps_a_public_revision_of_what_changed(make_market, staff):
    market = make_market(question="Will it rain?", resolution_criteria="Rain at the airport.")
    market_update(
        market=market,
        user=staff,
        reason="Clarified the station.",
        question="Will it rain?",
        resolution_criteria="Rain at Schiphol's weather station.",
    )
    event = MarketEvent.objects.get(market=market)
    assert event.kind == MarketEvent.Kind.EDITED
    assert event.actor == staff
    assert event.reason == "Clarified the station."
    assert event.revised_fields() == [
        ("Resolution criteria", "Rain at the airport.", "Rain at Schiphol's weather station.")
    ]
    market.refresh_from_db()
    assert market.resolution_criteria == "Rain at Schiphol's weather station."


def test_an_edit_that_changes_nothing_or_a_draft_leaves_no_revision(make_market, staff):
    market = make_market(question="Will it rain?")
    market_update(market=market, user=staff, question="Will it rain?")
    draft = make_market(open_now=False)
    market_update(market=draft, user=staff, question="A better question?")
    assert not MarketEvent.objects.exists()


def test_trades_are_refused_on_a_halted_market_through_the_quote_path_too(make_market, staff, make_user):
    market = make_market()
    market_halt(market=market, user=staff, reason="Paused.")
    user = make_user()
    with pytest.raises(MarketHalted):
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", amount="5"))
    assert not Position.objects.filter(user=user).exists()
