"""`manage.py demo_data`: idempotent, reconciles clean, tells the Rutte story as it happened, settles the
resolved markets, and `score_markets` then fills the leaderboard."""

import os
from datetime import UTC, datetime, timedelta
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from forecast.models import LeaderboardEntry, MarketScore
from markets.models import Market, Position, PricePoint, Resolution, Trade
from markets.services import markets_reconcile

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

RUTTE = "rutte-nato-secretary-general"
NEXT_SG = "next-nato-secretary-general"


def demo_data() -> str:
    out = StringIO()
    call_command("demo_data", stdout=out)
    return out.getvalue()


def score_markets() -> str:
    out = StringIO()
    call_command("score_markets", stdout=out)
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
        "resolutions": Resolution.objects.count(),
        "scores": MarketScore.objects.count(),
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
            scored = score_markets()
            yield output, first_history, scored
            transaction.set_rollback(True)


def price_at(slug: str, moment: datetime) -> list[float]:
    point = PricePoint.objects.filter(market__slug=slug, created_at__lte=moment).order_by("-created_at", "-id").first()
    assert point is not None
    return point.probabilities


def test_a_second_run_changes_nothing(loaded):
    before = counts()
    balances = list(Account.objects.order_by("pk").values_list("key", "balance"))
    assert "nothing changed" in demo_data()
    assert "nothing changed" in score_markets()
    assert counts() == before
    assert list(Account.objects.order_by("pk").values_list("key", "balance")) == balances
    assert Market.objects.filter(slug=RUTTE).count() == 1
    assert User.objects.filter(username="alice").count() == 1


def test_the_books_reconcile_clean(loaded):
    assert markets_reconcile() == []
    assert not Account.objects.filter(kind="wallet", balance__lt=0).exists()


def test_the_rutte_markets_resolved_as_history_did(loaded):
    rutte = Market.objects.get(slug=RUTTE)
    assert rutte.question == "Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?"
    assert rutte.status == Market.Status.RESOLVED
    assert rutte.opens_at is not None
    assert rutte.opens_at.year == 2023
    assert rutte.resolved_at is not None
    assert rutte.resolved_at.date().isoformat() == "2024-06-26"
    resolution = rutte.resolutions.get(is_current=True)
    assert resolution.state == Resolution.State.SETTLED
    assert resolution.outcome is not None
    assert resolution.outcome.code == "YES"
    assert "https://" in resolution.reason
    successor = Market.objects.get(slug=NEXT_SG).resolutions.get(is_current=True)
    assert successor.outcome is not None
    assert successor.outcome.code == "RUTTE"


def test_the_rutte_price_follows_the_news_of_2024(loaded):
    before_backing = price_at(RUTTE, datetime(2024, 2, 20, tzinfo=UTC))[0]
    after_backing = price_at(RUTTE, datetime(2024, 3, 10, tzinfo=UTC))[0]
    before_appointment = price_at(RUTTE, datetime(2024, 6, 26, 11, tzinfo=UTC))[0]
    assert before_backing < after_backing < before_appointment
    assert before_appointment > 0.9
    trades = Trade.objects.filter(market__slug=RUTTE)
    assert trades.count() >= 50
    assert trades.filter(side=Trade.Side.SELL).exists()
    assert trades.values("user").distinct().count() >= 6
    months = {(moment.year, moment.month) for moment in trades.values_list("created_at", flat=True)}
    assert len(months) >= 7


def test_resolved_and_open_markets(loaded):
    now = timezone.now()
    markets = list(Market.objects.all())
    assert len(markets) >= 12
    assert len({market.category for market in markets}) >= 4
    resolved = [market for market in markets if market.status == Market.Status.RESOLVED]
    assert len(resolved) >= 8
    for market in resolved:
        assert market.resolutions.get(is_current=True).state == Resolution.State.SETTLED
        assert not market.trades.filter(created_at__gt=market.resolved_at).exists()
    open_markets = [market for market in markets if market.status == Market.Status.OPEN]
    assert len(open_markets) >= 4
    for market in open_markets:
        assert market.closes_at > now + timedelta(weeks=2)
    for market in markets:
        assert market.trades.exists(), market.slug


def test_the_leaderboard_is_full_after_scoring(loaded):
    _output, _history, scored = loaded
    assert "Scored" in scored
    resolved = Market.objects.filter(status=Market.Status.RESOLVED)
    assert MarketScore.objects.values("market").distinct().count() == resolved.count()
    assert LeaderboardEntry.objects.values("user").distinct().count() >= 8


def test_the_users(loaded):
    admin = User.objects.get(username="admin")
    assert admin.is_staff
    assert admin.is_superuser
    assert admin.check_password("a-demo-admin-secret")
    output, _history, _scored = loaded
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
    _output, first_history, _scored = loaded
    assert len(first_history) >= 300
    assert trade_history() == first_history
