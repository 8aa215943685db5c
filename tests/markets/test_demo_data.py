"""`manage.py demo_data`: idempotent, reconciles clean, and gives the NATO markets weeks of history."""

import os
from datetime import timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from markets.models import Market, Position, PricePoint, Trade
from markets.services import markets_reconcile

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUTTE = "rutte-nato-secretary-general"
NEXT_SG = "next-nato-secretary-general"


def demo_data() -> str:
    out = StringIO()
    call_command("demo_data", stdout=out)
    return out.getvalue()


def counts() -> dict[str, int]:
    return {
        "users": User.objects.count(),
        "accounts": Account.objects.count(),
        "markets": Market.objects.count(),
        "trades": Trade.objects.count(),
        "positions": Position.objects.count(),
        "transactions": LedgerTransaction.objects.count(),
        "price_points": PricePoint.objects.count(),
    }


def trade_history() -> list[tuple[object, ...]]:
    return list(
        Trade.objects.order_by("market__slug", "created_at", "id").values_list(
            "market__slug", "user__username", "outcome__code", "side", "shares", "amount"
        )
    )


@pytest.fixture(scope="module")
def loaded(django_db_setup, django_db_blocker):
    """Loads the demo data once for the module (it takes seconds), inside a transaction rolled back at the end.

    It loads twice, rolling the first back, to show the seeded history is the same each time."""
    with django_db_blocker.unblock(), mock.patch.dict(os.environ, {"DEMO_ADMIN_PASSWORD": "a-demo-admin-secret"}):
        with transaction.atomic():
            demo_data()
            first_history = trade_history()
            transaction.set_rollback(True)
        with transaction.atomic():
            output = demo_data()
            yield output, first_history
            transaction.set_rollback(True)


def test_a_second_run_changes_nothing(loaded):
    before = counts()
    balances = list(Account.objects.order_by("pk").values_list("key", "balance"))
    output = demo_data()
    assert "nothing changed" in output
    assert counts() == before
    assert list(Account.objects.order_by("pk").values_list("key", "balance")) == balances
    assert Market.objects.filter(slug=RUTTE).count() == 1
    assert User.objects.filter(username="alice").count() == 1


def test_the_books_reconcile_clean(loaded):
    assert markets_reconcile() == []
    assert not Account.objects.filter(kind="wallet", balance__lt=0).exists()


def test_the_markets(loaded):
    now = timezone.now()
    markets = {market.slug: market for market in Market.objects.all()}
    assert 6 <= len(markets) <= 8
    assert len({market.category for market in markets.values()}) >= 4
    rutte = markets[RUTTE]
    assert rutte.question == "Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?"
    assert rutte.kind == Market.Kind.BINARY
    assert rutte.category == "Politics"
    assert len(rutte.description) > 100
    assert len(rutte.resolution_criteria) > 100
    assert list(markets[NEXT_SG].outcomes.values_list("code", "label")) == [
        ("RUTTE", "Mark Rutte"),
        ("KALLAS", "Kaja Kallas"),
        ("RINKEVICS", "Edgars Rinkēvičs"),
        ("IOHANNIS", "Klaus Iohannis"),
        ("OTHER", "Other"),
    ]
    closed = [market for market in markets.values() if market.status == Market.Status.CLOSED]
    assert len(closed) == 1
    assert closed[0].closes_at < now
    for market in markets.values():
        if market.status == Market.Status.OPEN:
            assert market.closes_at > now + timedelta(weeks=2)
        assert market.trades.exists(), market.slug


def test_the_nato_markets_trade_over_weeks_and_rutte_rises(loaded):
    now = timezone.now()
    for slug in (RUTTE, NEXT_SG):
        trades = Trade.objects.filter(market__slug=slug)
        assert trades.count() >= 60
        assert trades.filter(side=Trade.Side.SELL).exists()
        assert trades.values("user").distinct().count() >= 5
        times = sorted(trades.values_list("created_at", flat=True))
        assert times[0] < now - timedelta(weeks=5)
        assert times[-1] < now
        weeks = {moment.isocalendar()[:2] for moment in times}
        assert len(weeks) >= 5, f"{slug} trades only in weeks {weeks}"
    assert Trade.objects.count() >= 200
    rutte = Market.objects.get(slug=RUTTE).outcomes.get(code="YES")
    assert rutte.initial_probability == pytest.approx(0.6)
    assert rutte.probability > 0.8
    leader = Market.objects.get(slug=NEXT_SG).outcomes.order_by("-probability").first()
    assert leader is not None
    assert leader.code == "RUTTE"


def test_the_users(loaded):
    admin = User.objects.get(username="admin")
    assert admin.is_staff
    assert admin.is_superuser
    assert admin.check_password("a-demo-admin-secret")
    output, _history = loaded
    # The address `make run` serves on: WEB_ADDRESS, as the command reads it.
    assert f"http://{os.environ.get('WEB_ADDRESS', '127.0.0.1:8000')}/admin/" in output
    assert "a-demo-admin-secret" in output
    traders = User.objects.filter(username__in=["alice", "bob", "carol", "dave", "erin", "frank"])
    assert traders.count() == 6
    # Every demo user came through user_create: a wallet funded by a sign-up grant.
    for user in traders:
        assert LedgerTransaction.objects.filter(reference=f"signup:{user.pk}").exists()
        assert user.trades.exists()


def test_the_history_is_deterministic(loaded):
    _output, first_history = loaded
    assert len(first_history) >= 200
    assert trade_history() == first_history
