"""Permission and flow tests of the two human resolution paths: the staff website page and the admin."""

from datetime import timedelta

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.utils import timezone

from markets.models import Market, MarketEvent, Resolution
from markets.services import market_resolve, market_settle
from markets.views.market import MARKET_LOG_LENGTH
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


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


GOOD = {"kind": "outcome", "outcome": "YES", "reason": "Hail was reported.", "confirm": "yes"}


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_staff_pages_are_403_for_everyone_else(who, market, make_user):
    client = client_for(None if who == "anonymous" else make_user("mallory"))
    assert client.get("/staff/resolutions/").status_code == 403
    assert client.get(f"/staff/markets/{market.slug}/resolve/").status_code == 403
    assert client.post(f"/staff/markets/{market.slug}/resolve/", GOOD).status_code == 403
    assert not Resolution.objects.exists()


def test_queue_lists_closed_markets(staff, market):
    response = client_for(staff).get("/staff/resolutions/")
    assert response.status_code == 200
    assert market.question in response.content.decode()


def test_resolve_page_asks_to_confirm_before_resolving(staff, market):
    client = client_for(staff)
    assert client.get(f"/staff/markets/{market.slug}/resolve/").status_code == 200
    review = client.post(f"/staff/markets/{market.slug}/resolve/", {k: v for k, v in GOOD.items() if k != "confirm"})
    assert review.status_code == 200
    assert "Confirm and settle" in review.content.decode()
    assert not Resolution.objects.exists()

    done = client.post(f"/staff/markets/{market.slug}/resolve/", GOOD)
    assert done.status_code == 302
    resolution = Resolution.objects.get()
    assert resolution.outcome is not None
    assert (resolution.kind, resolution.outcome.code, resolution.created_by) == ("outcome", "YES", staff)
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVING


@pytest.mark.parametrize(
    "body",
    [
        {"kind": "outcome", "reason": "No winner chosen.", "confirm": "yes"},
        {"kind": "split", "split": "0.5, 0.6", "reason": "Bad split.", "confirm": "yes"},
        {"kind": "annulled", "reason": "", "confirm": "yes"},
    ],
)
def test_resolve_page_shows_errors_and_writes_nothing(staff, market, body):
    response = client_for(staff).post(f"/staff/markets/{market.slug}/resolve/", body)
    assert response.status_code == 422
    assert not Resolution.objects.exists()


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_admin_resolve_refuses_non_staff(who, market, make_user):
    client = client_for(None if who == "anonymous" else make_user("mallory"))
    response = client.post(f"/admin/markets/market/{market.pk}/resolve/", GOOD)
    # The admin sends anyone who is not staff to its login page.
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    action = client.post("/admin/markets/market/", {"action": "resolve_selected", "_selected_action": [market.pk]})
    assert action.status_code == 302
    assert "/admin/login/" in action["Location"]
    assert not Resolution.objects.exists()


def test_admin_action_opens_the_resolve_form_and_the_form_resolves(staff, market):
    client = client_for(staff)
    action = client.post("/admin/markets/market/", {"action": "resolve_selected", "_selected_action": [market.pk]})
    assert action.status_code == 302
    assert action["Location"] == f"/admin/markets/market/{market.pk}/resolve/"
    assert client.get(action["Location"]).status_code == 200
    done = client.post(action["Location"], {"kind": "split", "split": "0.4, 0.6", "reason": "Half hail."})
    assert done.status_code == 302
    resolution = Resolution.objects.get()
    assert resolution.payouts == ["0.400000", "0.600000"]
    change = client.get(f"/admin/markets/market/{market.pk}/change/")
    assert change.status_code == 200
    assert "Half hail." in change.content.decode()


def test_admin_add_market_goes_through_market_create(staff):
    client = client_for(staff)
    assert client.get("/admin/markets/market/add/").status_code == 200
    response = client.post(
        "/admin/markets/market/add/",
        {
            "question": "Will it hail in May?",
            "slug": "hail-may",
            "kind": "binary",
            "liquidity": "50",
            "closes_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    market = Market.objects.get(slug="hail-may")
    assert market.status == Market.Status.OPEN
    assert market.escrow.balance == market.subsidy > 0


def test_admin_changelist_and_audit_pages_render_for_staff(staff, market):
    market_resolve(market=market, user=staff, kind="annulled", reason="Void.")
    client = client_for(staff)
    for url in ["/admin/markets/market/", "/admin/markets/resolution/", "/admin/markets/reconciliationrun/"]:
        assert client.get(url).status_code == 200, url


def test_audit_include_shows_who_what_and_why(staff, market):
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="NO", reason="No hail at all.")
    html = render_to_string("markets/_resolution_audit.html", {"resolutions": market.resolutions.all()})
    assert "No hail at all." in html
    assert "staff" in html
    assert "No won" in html


def test_market_page_shows_every_resolution_once_in_its_log_with_how_it_settled(staff, market):
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Hail was reported.")
    market_settle(market_id=market.pk)
    market_resolve(market=market, user=staff, kind="annulled", reason="The station was broken.")
    page = Client().get(f"/markets/{market.slug}/").content.decode()
    # Once, in the market log (the timeline of every staff action); no second "Resolution history" section.
    assert "Resolution history" not in page
    assert page.count("Hail was reported.") == 1
    assert page.count("The station was broken.") == 1
    log = page[page.index("Market log") :]
    log = log[: log.index("</section>")]
    assert log.count("By staff on") == 2
    assert "<strong>Re-resolved</strong>" in log
    assert "annulled: every trader gets back what they put in · " in log
    assert '<span class="resolution-state">awaiting settlement</span>' in log  # the annulment
    assert 'Yes · <span class="resolution-state">settled <time' in log
    market_settle(market_id=market.pk)  # the annulment's settlement reverses the first one's
    log = Client().get(f"/markets/{market.slug}/").content.decode().split("Market log")[1]
    assert log.count(" UTC, reversed <time") == 1
    assert log.count('<span class="resolution-state">settled <time') == 2


def test_a_long_market_log_keeps_every_resolution(staff, market):
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Hail was reported.")
    later = timezone.now() + timedelta(minutes=1)
    MarketEvent.objects.bulk_create(
        MarketEvent(market=market, kind=MarketEvent.Kind.CLOSE_MOVED, actor=staff, reason=f"Move {i}", created_at=later)
        for i in range(MARKET_LOG_LENGTH)
    )
    page = Client().get(f"/markets/{market.slug}/").content.decode()
    log = page[page.index("Market log") :]
    assert log.count("By staff on") == MARKET_LOG_LENGTH + 1
    assert "Hail was reported." in log
