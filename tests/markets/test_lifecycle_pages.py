"""The live-market controls from the website's staff forms and the admin, and what the market page and the
list show of them: the halt notice, the market log with its revisions, results of settled markets."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from markets.models import Market, MarketEvent
from markets.services import market_halt, market_resolve, market_settle, market_update
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def market(make_market, make_user):
    market = make_market("nato", question="Who leads NATO next?", kind=Market.Kind.MULTIPLE)
    buy(make_user("trader"), market, "RUTTE", "30")
    return market


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_the_control_pages_are_403_for_everyone_but_staff(who, market, make_user):
    client = client_for(None if who == "anonymous" else make_user("mallory"))
    for action in ("close", "extend", "halt", "resume", "liquidity", "outcome"):
        assert client.get(f"/staff/markets/{market.slug}/{action}/").status_code == 403
        assert client.post(f"/staff/markets/{market.slug}/{action}/", {f"{action}-reason": "x"}).status_code == 403
    assert not MarketEvent.objects.exists()
    page = client.get(f"/markets/{market.slug}/").content.decode()
    assert "Staff controls" not in page


def test_staff_see_the_controls_on_the_market_page(staff, market):
    page = client_for(staff).get(f"/markets/{market.slug}/").content.decode()
    assert "Staff controls" in page
    for action in ("close", "extend", "halt", "liquidity", "outcome"):
        assert f'id="control-{action}"' in page
    assert 'id="control-resume"' not in page
    assert f"/staff/markets/{market.slug}/resolve/" in page


def test_halting_from_the_page_shows_the_reason_to_traders(staff, market, make_user):
    client = client_for(staff)
    response = client.post(f"/staff/markets/{market.slug}/halt/", {"halt-reason": "Waiting for the <b>summit</b>."})
    assert response.status_code == 302
    market.refresh_from_db()
    assert market.is_halted
    assert market.halt_reason == "Waiting for the <b>summit</b>."
    page = client_for(make_user("reader")).get(f"/markets/{market.slug}/").content.decode()
    assert 'id="halt-notice"' in page
    assert "Waiting for the &lt;b&gt;summit&lt;/b&gt;." in page
    assert "<b>summit</b>" not in page
    assert "Trading halted" in page  # the market log
    listing = client_for().get("/", {"status": "halted"}).content.decode()
    assert "badge-halted" in listing
    assert market.question in listing
    assert market.question not in client_for().get("/", {"status": "resolved"}).content.decode()


def test_a_refused_control_comes_back_with_its_error(staff, market):
    client = client_for(staff)
    response = client.post(
        f"/staff/markets/{market.slug}/liquidity/", {"liquidity-liquidity": "5", "liquidity-reason": "x"}
    )
    assert response.status_code == 422
    assert "Give a liquidity above the current" in response.content.decode()
    response = client.post(f"/staff/markets/{market.slug}/halt/", {"halt-reason": ""})
    assert response.status_code == 422
    assert client.get(f"/staff/markets/{market.slug}/nonsense/").status_code == 404
    assert not MarketEvent.objects.exists()


def test_every_control_works_from_the_page(staff, market):
    client = client_for(staff)
    later = (timezone.now() + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M")
    posts = [
        ("extend", {"extend-closes_at": later, "extend-reason": "Postponed."}),
        ("halt", {"halt-reason": "Pause."}),
        ("resume", {"resume-reason": ""}),
        ("liquidity", {"liquidity-liquidity": "400", "liquidity-reason": "Deeper."}),
        ("outcome", {"outcome-label": "Mette Frederiksen", "outcome-probability": "10", "outcome-reason": "Named."}),
        ("close", {"close-reason": "Appointed."}),
    ]
    for action, data in posts:
        response = client.post(f"/staff/markets/{market.slug}/{action}/", data)
        assert response.status_code == 302, (action, response.content.decode()[-2000:])
    kinds = list(MarketEvent.objects.filter(market=market).order_by("id").values_list("kind", flat=True))
    assert kinds == ["close_moved", "halted", "resumed", "liquidity_added", "outcome_added", "closed"]
    assert market.outcomes.get(code="METTE_FREDERIKSEN").label == "Mette Frederiksen"


def test_every_control_works_from_the_admin(staff, market):
    client = client_for(staff)
    change = client.get(f"/admin/markets/market/{market.pk}/change/").content.decode()
    assert f"/admin/markets/market/{market.pk}/control/halt/" in change
    response = client.post(f"/admin/markets/market/{market.pk}/control/halt/", {"reason": "From the admin."})
    assert response.status_code == 302
    response = client.post(
        f"/admin/markets/market/{market.pk}/control/liquidity/", {"liquidity": "300", "reason": "Deeper."}
    )
    assert response.status_code == 302
    refused = client.post(f"/admin/markets/market/{market.pk}/control/liquidity/", {"liquidity": "1", "reason": "x"})
    assert refused.status_code == 200
    assert "Give a liquidity above the current" in refused.content.decode()
    events = MarketEvent.objects.filter(market=market).order_by("id")
    assert [(e.kind, e.actor, e.reason) for e in events] == [
        ("halted", staff, "From the admin."),
        ("liquidity_added", staff, "Deeper."),
    ]
    change = client.get(f"/admin/markets/market/{market.pk}/change/").content.decode()
    assert "From the admin." in change  # the event inline


def test_the_edit_page_records_a_public_revision(staff, market):
    client = client_for(staff)
    data = {
        "question": market.question,
        "category": "",
        "description": "",
        "resolution_criteria": "The North Atlantic Council's announcement.",
        "reason": "Named the source.",
    }
    assert client.post(f"/markets/{market.slug}/edit/", data).status_code == 302
    page = client_for().get(f"/markets/{market.slug}/").content.decode()
    assert "Text edited" in page
    assert "Named the source." in page
    assert "The North Atlantic Council&#x27;s announcement." in page


def test_a_resolved_market_shows_its_result_and_payout_not_its_last_price(staff, market, make_user):
    market_update(market=market, user=staff, description="Old words.")
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="RUTTE", reason="Appointed 26 June.")
    market_settle(market_id=market.pk)
    page = client_for().get(f"/markets/{market.slug}/").content.decode()
    assert "Resolved: Rutte" in page
    assert "Each Rutte share paid 1 credit" in page
    assert "paid 1.00" in page
    assert "paid 0.00" in page
    listing = client_for().get("/").content.decode()
    assert "Resolved: Rutte" in listing
    assert "Each Rutte share paid 1 credit" in listing
    resolved = client_for().get("/", {"status": "resolved"}).content.decode()
    assert market.question in resolved


def test_an_annulled_market_says_so(staff, make_market, make_user):
    market = make_market("void", question="Will the void resolve?")
    buy(make_user("trader"), market, "YES", "20")
    market_resolve(market=market, user=staff, kind="annulled", reason="The question was ill-posed.")
    market_settle(market_id=market.pk)
    page = client_for().get(f"/markets/{market.slug}/").content.decode()
    assert "Annulled" in page
    assert "refunded" in page
    listing = client_for().get("/", {"status": "annulled"}).content.decode()
    assert market.question in listing
    assert "Annulled" in listing


def test_halted_badge_on_the_card(staff, market):
    market_halt(market=market, user=staff, reason="Paused.")
    listing = client_for().get("/").content.decode()
    assert "badge-halted" in listing
