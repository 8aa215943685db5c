"""The live-market controls through the API: staff only (everyone else 403 in the error shape), each one
call of its service, and the audit trail they leave public at .../events/ and .../revisions/."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from markets.models import Market, MarketEvent, Outcome
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def market(make_market, make_user):
    market = make_market("nato", kind=Market.Kind.MULTIPLE, liquidity=100)
    buy(make_user("trader"), market, "RUTTE", "40")
    return market


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def later() -> str:
    return (timezone.now() + timedelta(days=60)).isoformat()


CONTROLS = [
    ("close", {"reason": "Known."}),
    ("extend", {"closes_at": "LATER", "reason": "Postponed."}),
    ("halt", {"reason": "Checking."}),
    ("resume", {"reason": "Fine."}),
    ("liquidity", {"liquidity": "300", "reason": "Deeper."}),
    ("outcomes", {"code": "NEW", "label": "New", "probability": "0.1", "reason": "Named."}),
]


@pytest.mark.parametrize(("path", "body"), CONTROLS)
def test_a_trader_gets_403_in_the_error_shape_and_nothing_changes(path, body, market, make_user):
    body = {key: later() if value == "LATER" else value for key, value in body.items()}
    response = client_for(make_user("mallory")).post(f"/api/v1/markets/{market.slug}/{path}/", body, format="json")
    assert response.status_code == 403
    assert set(response.json()["error"]) == {"code", "message", "fields"}
    assert response.json()["error"]["code"] == "permission_denied"
    assert not MarketEvent.objects.exists()
    anonymous = client_for().post(f"/api/v1/markets/{market.slug}/{path}/", body, format="json")
    assert anonymous.status_code in (401, 403)


def test_a_trader_cannot_patch_the_texts(market, make_user):
    response = client_for(make_user("mallory")).patch(
        f"/api/v1/markets/{market.slug}/", {"question": "Mine now?"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"
    market.refresh_from_db()
    assert market.question != "Mine now?"


def test_halt_then_a_trade_is_refused_with_the_reason_then_resume(
    market, staff, make_user, django_capture_on_commit_callbacks
):
    client = client_for(staff)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/markets/{market.slug}/halt/", {"reason": "Source down."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["halted"] is True
    assert response.json()["event"]["kind"] == "halted"

    trader = client_for(make_user("late"))
    refused = trader.post(
        f"/api/v1/markets/{market.slug}/trades/", {"outcome": "RUTTE", "side": "buy", "amount": "5"}, format="json"
    )
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "market_halted"
    assert "Source down." in refused.json()["error"]["message"]
    quote = trader.get(f"/api/v1/markets/{market.slug}/quote/", {"outcome": "RUTTE", "side": "buy", "amount": "5"})
    assert quote.status_code == 409
    assert quote.json()["error"]["code"] == "market_halted"
    detail = client_for().get(f"/api/v1/markets/{market.slug}/").json()
    assert detail["halted"] is True
    assert detail["halt_reason"] == "Source down."
    halted_list = client_for().get("/api/v1/markets/", {"status": "halted"}).json()["results"]
    assert [row["slug"] for row in halted_list] == [market.slug]

    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(f"/api/v1/markets/{market.slug}/resume/", {}, format="json").status_code == 200
    ok = trader.post(
        f"/api/v1/markets/{market.slug}/trades/", {"outcome": "RUTTE", "side": "buy", "amount": "5"}, format="json"
    )
    assert ok.status_code == 201, ok.content
    assert client_for().get("/api/v1/markets/", {"status": "halted"}).json()["results"] == []


def test_close_and_extend(market, staff, make_market):
    client = client_for(staff)
    other = make_market("other")
    moved = later()
    response = client.post(f"/api/v1/markets/{other.slug}/extend/", {"closes_at": moved}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["event"]["details"]["to"] == Market.objects.get(pk=other.pk).closes_at.isoformat()

    missing = client.post(f"/api/v1/markets/{market.slug}/close/", {}, format="json")
    assert missing.status_code == 400
    assert "reason" in missing.json()["error"]["fields"]
    response = client.post(f"/api/v1/markets/{market.slug}/close/", {"reason": "Appointed."}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "closed"
    again = client.post(f"/api/v1/markets/{market.slug}/close/", {"reason": "Twice."}, format="json")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "invalid_market_state"


def test_add_liquidity_and_an_outcome(market, staff, django_capture_on_commit_callbacks):
    client = client_for(staff)
    before = client_for().get(f"/api/v1/markets/{market.slug}/").json()["outcomes"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/markets/{market.slug}/liquidity/", {"liquidity": "250", "reason": "Deeper."}, format="json"
        )
    assert response.status_code == 200, response.content
    assert response.json()["liquidity"] == "250.0000"
    assert Decimal(response.json()["event"]["details"]["subsidy"]) > 0
    after = client_for().get(f"/api/v1/markets/{market.slug}/").json()
    assert after["liquidity"] == "250.0000"
    assert [o["probability"] for o in after["outcomes"]] == pytest.approx([o["probability"] for o in before])

    bad = client.post(f"/api/v1/markets/{market.slug}/liquidity/", {"liquidity": "10", "reason": "x"}, format="json")
    assert bad.status_code == 400
    assert "liquidity" in bad.json()["error"]["fields"]

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/v1/markets/{market.slug}/outcomes/",
            {"code": "FREDERIKSEN", "label": "Mette Frederiksen", "probability": "0.2", "reason": "Named by press."},
            format="json",
        )
    assert response.status_code == 201, response.content
    outcomes = client_for().get(f"/api/v1/markets/{market.slug}/").json()["outcomes"]
    assert [o["code"] for o in outcomes][-1] == "FREDERIKSEN"
    assert outcomes[-1]["probability"] == pytest.approx(0.2)
    history = client_for().get(f"/api/v1/markets/{market.slug}/history/")
    assert history.status_code == 200
    assert [series["code"] for series in history.json()["series"]][-1] == "FREDERIKSEN"
    start = (timezone.now() - timedelta(hours=2)).isoformat()
    for interval in ("1m", "1h"):
        candles = client_for().get(f"/api/v1/markets/{market.slug}/history/", {"interval": interval, "start": start})
        assert candles.status_code == 200, candles.content
    assert Outcome.objects.filter(market=market).count() == 6


def test_patch_edits_texts_and_the_revisions_are_public(market, staff):
    client = client_for(staff)
    response = client.patch(
        f"/api/v1/markets/{market.slug}/",
        {"resolution_criteria": "As announced on nato.int.", "reason": "Named the source."},
        format="json",
    )
    assert response.status_code == 200, response.content
    assert response.json()["revision"]["kind"] == "edited"
    assert (
        response.json()["revision"]["details"]["changes"]["resolution_criteria"]["after"] == "As announced on nato.int."
    )
    revisions = client_for().get(f"/api/v1/markets/{market.slug}/revisions/").json()["results"]
    assert len(revisions) == 1
    assert revisions[0]["reason"] == "Named the source."
    assert revisions[0]["actor"] == "staff"
    events = client_for().get(f"/api/v1/markets/{market.slug}/events/").json()["results"]
    assert [event["kind"] for event in events] == ["edited"]
    same = client.patch(f"/api/v1/markets/{market.slug}/", {"question": market.question}, format="json")
    assert same.status_code == 200
    assert same.json() == {"revision": None}
    bad = client.patch(f"/api/v1/markets/{market.slug}/", {"question": ""}, format="json")
    assert bad.status_code == 400
    assert "question" in bad.json()["error"]["fields"]


def test_unknown_market_is_404_in_the_error_shape(staff):
    response = client_for(staff).post("/api/v1/markets/no-such/halt/", {"reason": "x"}, format="json")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert client_for().get("/api/v1/markets/no-such/revisions/").status_code == 404
