"""Every model registered in the admin lists and shows its rows to staff, and the rows that only
services may write (ledger, trades, resolutions, payouts, scores) cannot be added, edited or deleted."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from accounts.models import Account, LedgerTransaction
from config.core.admin import ReadOnlyAdmin
from markets.models import Market, Trade
from markets.services import trade_execute
from markets.services.standing import StandingRequest, standing_forecast_create
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

READ_ONLY_MODELS = {
    "account",
    "ledgertransaction",
    "trade",
    "resolution",
    "payout",
    "reconciliationrun",
    "standingforecast",
}


@pytest.fixture
def staff_client(make_market, client, make_user):
    staff = make_user("root", is_staff=True)
    market = make_market(
        slug="admin-walk",
        question="Will the admin render?",
        kind=Market.Kind.BINARY,
        liquidity=50,
        closes_at=timezone.now() + timedelta(days=3),
    )
    trade_execute(user=make_user("trader"), market=market, request=trade_request("YES", "buy", amount="5"))
    standing_forecast_create(
        user=make_user("stander"),
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.7"), band_points=Decimal("3"), budget=Decimal("20")),
    )
    client.force_login(staff)
    return client


def test_every_registered_model_lists_and_shows_its_rows(staff_client):
    for model, model_admin in admin.site._registry.items():
        meta = model._meta
        changelist = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
        assert staff_client.get(changelist).status_code == 200, changelist
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            change = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[row.pk])
            assert staff_client.get(change).status_code == 200, change
        if meta.model_name in READ_ONLY_MODELS:
            assert isinstance(model_admin, ReadOnlyAdmin), meta.model_name


def test_ledger_rows_cannot_be_edited_or_deleted_from_the_admin(staff_client):
    account = Account.objects.get(key="house")
    transaction = LedgerTransaction.objects.order_by("pk")[0]
    trade = Trade.objects.order_by("pk")[0]
    assert staff_client.get(reverse("admin:accounts_account_add")).status_code == 403
    response = staff_client.post(reverse("admin:accounts_account_change", args=[account.pk]), {"balance": "1000000"})
    assert response.status_code == 403
    delete_transaction = reverse("admin:accounts_ledgertransaction_delete", args=[transaction.pk])
    assert staff_client.post(delete_transaction).status_code == 403
    assert staff_client.post(reverse("admin:markets_trade_delete", args=[trade.pk])).status_code == 403
    assert Account.objects.get(key="house").balance == account.balance


def test_the_market_list_filters_by_category_with_the_blank_one_named(staff_client, make_market):
    make_market(
        slug="filed",
        question="Filed under politics?",
        kind=Market.Kind.BINARY,
        liquidity=50,
        closes_at=timezone.now() + timedelta(days=3),
        category="Politics",
    )
    page = staff_client.get("/admin/markets/market/").content.decode()
    assert ">(none)</a>" in page
    assert 'href="?category="' not in page
    blank = staff_client.get("/admin/markets/market/", {"category": "-"}).context["cl"].result_list
    assert [market.slug for market in blank] == ["admin-walk"]
    politics = staff_client.get("/admin/markets/market/", {"category": "Politics"}).context["cl"].result_list
    assert [market.slug for market in politics] == ["filed"]
