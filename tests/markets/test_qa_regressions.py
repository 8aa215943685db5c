"""Regressions found by walking the product as its users: each test names what used to go wrong."""

import pytest
from django.test import Client
from django.utils import timezone

from markets.models import Market, Payout, Position, Resolution
from markets.services import market_resolve, market_settle
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def market(make_market, staff, make_user):
    market = make_market("hail", created_by=staff)
    buy(make_user("trader"), market, "YES", "30")
    Market.objects.filter(pk=market.pk).update(status=Market.Status.CLOSED, closed_at=timezone.now())
    market.refresh_from_db()
    return market


def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


CONFIRM = {"kind": "outcome", "outcome": "YES", "reason": "Hail was reported.", "confirm": "yes"}


def test_a_double_submitted_confirm_records_one_resolution(staff, market):
    client = staff_client(staff)
    for _ in range(2):
        assert client.post(f"/staff/markets/{market.slug}/resolve/", CONFIRM).status_code == 302
    assert Resolution.objects.filter(market=market).count() == 1


def test_repeating_the_current_resolution_after_settlement_changes_nothing(staff, market):
    first = market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Hail.")
    market_settle(market_id=market.pk)
    again = market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Hail, again.")
    assert again.pk == first.pk
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVED
    assert list(Resolution.objects.filter(market=market).values_list("state", "is_current")) == [
        (Resolution.State.SETTLED, True)
    ]


def test_the_same_resolution_twice_through_the_api_is_one_row(staff, market):
    client = staff_client(staff)
    body = {"kind": "split", "split": ["0.3", "0.7"], "reason": "Half the region had hail."}
    url = f"/api/v1/markets/{market.slug}/resolution/"
    first = client.post(url, body, content_type="application/json")
    second = client.post(url, {**body, "split": ["0.300000", "0.700000"]}, content_type="application/json")
    assert first.status_code == second.status_code == 202
    assert first.json()["id"] == second.json()["id"]
    assert Resolution.objects.filter(market=market).count() == 1


def test_a_different_resolution_still_re_resolves(staff, market):
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Hail.")
    market_settle(market_id=market.pk)
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NO", reason="It was sleet.")
    market_resolve(market=market, user=staff, kind="annulled", reason="The question was ambiguous.")
    assert Resolution.objects.filter(market=market).count() == 3


def test_the_staff_queue_table_uses_the_site_table_style(staff, market):
    page = staff_client(staff).get("/staff/resolutions/").content.decode()
    assert '<table class="data stack">' in page
    assert '<table class="table">' not in page


def test_the_trade_preview_does_not_inherit_the_submit_buttons_disabled_elt(make_market, make_user, staff):
    make_market("rain", created_by=staff)
    client = Client()
    client.force_login(make_user("forecaster"))
    page = client.get("/markets/rain/").content.decode()
    # Inherited, htmx looked for a submit button inside the preview div on every preview and logged an error.
    assert 'hx-disinherit="hx-disabled-elt"' in page


@pytest.mark.parametrize(
    ("kind", "outcome", "paid", "profit"),
    [("outcome", "YES", True, True), ("outcome", "NO", False, False), ("annulled", None, True, False)],
)
def test_a_settled_markets_position_panel_shows_what_the_settlement_paid(
    make_market, staff, make_user, kind, outcome, paid, profit
):
    market = make_market("sleet", created_by=staff)
    trader = make_user("holder")
    buy(trader, market, "YES", "30")
    market_resolve(market=market, user=staff, kind=kind, outcome_code=outcome, reason="Settled for the test.")
    market_settle(market_id=market.pk)
    payout = Payout.objects.get(market=market, user=trader).amount
    put_in = Position.objects.get(market=market, user=trader).net_cost
    assert (payout > 0) == paid

    client = Client()
    client.force_login(trader)
    page = client.get(f"/markets/{market.slug}/").content.decode()
    # Before: "Value at current probabilities" and a profit against the last prices, whatever was paid.
    assert "Value at current probabilities" not in page
    assert f'<strong id="settled-payout">{payout:,.2f}</strong>' in page
    assert ((payout - put_in) > 0) == profit
