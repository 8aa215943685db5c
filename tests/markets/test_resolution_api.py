from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from markets.models import Market, Resolution
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(make_user):
    return make_user("staff", is_staff=True)


@pytest.fixture
def market(make_market, staff, make_user):
    market = make_market("snow", created_by=staff)
    buy(make_user("trader"), market, "YES", "25")
    return market


def client_for(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def resolve(client: APIClient, slug: str, body: dict[str, object]):
    return client.post(f"/api/v1/markets/{slug}/resolution/", body, format="json")


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_non_staff_cannot_resolve(who, market, make_user):
    client = client_for(None if who == "anonymous" else make_user("mallory"))
    response = resolve(client, market.slug, {"kind": "outcome", "outcome": "YES", "reason": "I say so."})
    assert response.status_code == (403 if who == "user" else 401) or response.status_code == 403
    assert not Resolution.objects.exists()
    market.refresh_from_db()
    assert market.status == Market.Status.OPEN


def test_staff_resolves_and_the_market_is_resolving(staff, market):
    response = resolve(client_for(staff), market.slug, {"kind": "outcome", "outcome": "YES", "reason": "It snowed."})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["kind"] == "outcome"
    assert body["outcome"] == "YES"
    assert body["payouts"] == ["1", "0"]
    assert body["created_by"] == "staff"
    assert body["state"] == "pending"
    market.refresh_from_db()
    assert market.status == Market.Status.RESOLVING
    resolution = market.resolutions.get(is_current=True)
    assert resolution.reason == "It snowed."
    assert resolution.created_by == staff


def test_staff_re_resolves_with_a_reason(staff, market):
    client = client_for(staff)
    first = resolve(client, market.slug, {"kind": "outcome", "outcome": "YES", "reason": "It snowed."}).json()
    second = resolve(client, market.slug, {"kind": "split", "split": ["0.25", "0.75"], "reason": "Sleet, not snow."})
    assert second.status_code == 202
    assert second.json()["supersedes"] == first["id"]
    assert list(market.resolutions.values_list("is_current", flat=True).order_by("id")) == [False, True]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"kind": "outcome", "reason": "No outcome given."},
        {"kind": "outcome", "outcome": "YES"},
        {"kind": "outcome", "outcome": "YES", "reason": ""},
        {"kind": "split", "split": ["0.5", "0.4"], "reason": "Does not sum to 1."},
        {"kind": "split", "split": "0.5,0.5", "reason": "Not a list."},
        {"kind": "split", "split": ["NaN", "1"], "reason": "Not numbers."},
        {"kind": "banana", "reason": "Unknown kind."},
    ],
)
def test_bad_resolution_input_is_a_400_and_writes_nothing(staff, market, body):
    response = resolve(client_for(staff), market.slug, body)
    assert response.status_code == 400, response.content
    assert "error" in response.json()
    assert not Resolution.objects.exists()


def test_unknown_market_is_a_404(staff):
    response = resolve(client_for(staff), "nope", {"kind": "annulled", "reason": "x"})
    assert response.status_code == 404


def test_a_draft_market_is_a_409(make_market, staff):
    draft = make_market(
        slug="draft",
        question="Draft?",
        kind="binary",
        liquidity="10",
        closes_at=timezone.now() + timedelta(days=1),
        open_now=False,
    )
    response = resolve(client_for(staff), draft.slug, {"kind": "annulled", "reason": "Never opened."})
    assert response.status_code == 409


MARKET_BODY = {
    "slug": "mars-2030",
    "question": "Will humans land on Mars by 2030?",
    "description": "Crewed landing.",
    "resolution_criteria": "A crewed landing reported by NASA or ESA.",
    "kind": "multiple",
    "outcomes": [
        {"code": "NASA", "label": "NASA"},
        {"code": "SPACEX", "label": "SpaceX"},
        {"code": "NONE", "label": "No one"},
    ],
    "liquidity": "150",
    "initial_probabilities": ["0.1", "0.2", "0.7"],
}


def test_staff_creates_a_market(staff):
    body = {**MARKET_BODY, "closes_at": (timezone.now() + timedelta(days=30)).isoformat()}
    response = client_for(staff).post("/api/v1/markets/", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "open"
    assert [o["code"] for o in created["outcomes"]] == ["NASA", "SPACEX", "NONE"]
    assert created["outcomes"][2]["probability"] == pytest.approx(0.7)
    market = Market.objects.get(slug="mars-2030")
    assert market.created_by == staff
    assert market.escrow.balance == market.subsidy > 0


@pytest.mark.parametrize("who", ["anonymous", "user"])
def test_non_staff_cannot_create_markets(who, make_user):
    client = client_for(None if who == "anonymous" else make_user("mallory"))
    body = {**MARKET_BODY, "closes_at": (timezone.now() + timedelta(days=30)).isoformat()}
    response = client.post("/api/v1/markets/", body, format="json")
    assert response.status_code in (401, 403)
    if who == "user":
        assert response.status_code == 403
    assert not Market.objects.exists()


@pytest.mark.parametrize(
    "change",
    [
        {"slug": "Not A Slug"},
        {"initial_probabilities": ["0.5", "0.6", "0.7"]},
        {"initial_probabilities": ["0.5", "0.5"]},
        {"liquidity": "-3"},
        {"liquidity": "abc"},
        {"closes_at": "yesterday"},
        {"kind": "binary"},
        {"outcomes": [{"code": "A", "label": "A"}, {"code": "A", "label": "Again"}]},
    ],
)
def test_bad_market_input_is_a_400_and_creates_nothing(staff, change):
    body = {**MARKET_BODY, "closes_at": (timezone.now() + timedelta(days=30)).isoformat(), **change}
    response = client_for(staff).post("/api/v1/markets/", body, format="json")
    assert response.status_code == 400, response.content
    assert not Market.objects.exists()


def test_market_closing_in_the_past_is_refused(staff):
    body = {**MARKET_BODY, "closes_at": (timezone.now() - timedelta(days=1)).isoformat()}
    response = client_for(staff).post("/api/v1/markets/", body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["fields"].keys() == {"closes_at"}
