"""Liquidity and outcomes added while real threads trade the same market against PostgreSQL: every change
serialises on the market lock, no trade is priced on a half-rebased maker, and the books hold to the micro-credit."""

import math
import random
import threading
import traceback
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from accounts.models import Account, LedgerEntry, LedgerTransaction, User
from accounts.services import system_account
from markets import lmsr
from markets.errors import InsufficientFunds, InsufficientShares
from markets.models import Market, MarketEvent, Outcome, PricePoint, Trade
from markets.pricing import lmsr_state
from markets.services import market_liquidity_add, market_outcome_add, markets_reconcile, trade_execute
from markets.services.lifecycle import escrow_required
from tests.factories import trade_request

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TRADERS = 8
TRADES_EACH = 15


def _trader(seed: int, user: User, market: Market, barrier: threading.Barrier, errors: list[str]) -> None:
    rng = random.Random(seed)
    try:
        barrier.wait(timeout=30)
        for _ in range(TRADES_EACH):
            codes = list(Outcome.objects.filter(market=market).values_list("code", flat=True))
            code = rng.choice(codes)
            side = "buy" if rng.random() < 0.7 else "sell"
            quantity = (
                {"amount": f"{rng.uniform(1, 40):.2f}"} if side == "buy" else {"shares": f"{rng.uniform(1, 20):.3f}"}
            )
            try:
                trade_execute(user=user, market=market, request=trade_request(code, side, **quantity))
            except (InsufficientFunds, InsufficientShares):
                continue
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        connection.close()


def _controller(staff: User, market: Market, barrier: threading.Barrier, errors: list[str]) -> None:
    try:
        barrier.wait(timeout=30)
        for step, b in enumerate(("150", "220", "300", "420")):
            market_liquidity_add(market=market, user=staff, liquidity=b, reason=f"Deeper, step {step}.")
            if step == 1:
                market_outcome_add(
                    market=market, user=staff, code="LATE", label="A late entrant", probability="0.05", reason="New."
                )
    except Exception:
        errors.append(traceback.format_exc())
    finally:
        connection.close()


def test_liquidity_and_an_outcome_added_while_trades_run(make_user, make_market):
    staff = make_user("controller", is_staff=True)
    users = [make_user(f"racer{index}") for index in range(TRADERS)]
    market = make_market("hot", kind=Market.Kind.MULTIPLE, liquidity=100, closes_at=timezone.now() + timedelta(days=1))
    house_before = system_account(kind=Account.Kind.HOUSE).balance
    escrow_start = Account.objects.get(pk=market.escrow_id).balance
    errors: list[str] = []
    barrier = threading.Barrier(TRADERS + 1)
    threads = [
        threading.Thread(target=_trader, args=(index, users[index], market, barrier, errors))
        for index in range(TRADERS)
    ]
    threads.append(threading.Thread(target=_controller, args=(staff, market, barrier, errors)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    assert errors == [], "\n".join(errors)

    market.refresh_from_db()
    assert market.liquidity == Decimal("420")
    assert MarketEvent.objects.filter(market=market, kind=MarketEvent.Kind.LIQUIDITY_ADDED).count() == 4
    assert Trade.objects.filter(market=market).exists()

    # The escrow holds exactly the house's subsidies and the trades' net, and the house paid only the subsidies.
    subsidies = LedgerEntry.objects.filter(
        transaction__kind=LedgerTransaction.Kind.SUBSIDY, account_id=market.escrow_id
    ).aggregate(total=Sum("amount"))["total"]
    assert subsidies == market.subsidy
    assert market.subsidy > escrow_start
    trades = LedgerEntry.objects.filter(
        transaction__kind=LedgerTransaction.Kind.TRADE, account_id=market.escrow_id
    ).aggregate(total=Sum("amount"))["total"]
    escrow = Account.objects.get(pk=market.escrow_id).balance
    assert escrow == subsidies + trades
    assert house_before - system_account(kind=Account.Kind.HOUSE).balance == market.subsidy - escrow_start

    # The cover holds at the end, and the stored prices are the maker's prices of the stored state.
    outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
    assert escrow >= escrow_required(liquidity=float(market.liquidity), outcomes=outcomes)
    maker = lmsr.prices(lmsr_state(float(market.liquidity), outcomes), float(market.liquidity))
    assert [o.probability for o in outcomes] == pytest.approx(maker, abs=1e-12)
    latest = PricePoint.objects.filter(market=market).order_by("-created_at", "-id").first()
    assert latest is not None
    assert latest.probabilities == pytest.approx(maker, abs=1e-9)
    assert math.fsum(maker) == pytest.approx(1.0)
    assert markets_reconcile() == []
