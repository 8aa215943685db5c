"""Amounts, shares and probabilities are ASCII decimals only (issue 8, item 7).

Python's Decimal and float read any Unicode digit: "\uff11\uff12" (full-width) was 12 credits to the API and the
trade form, and "1_000" was 1000. One rule (config.core.numbers) refuses them in the API's serializers (a 400
naming the field) and the website's forms (a form error), and in what staff type for a market or a resolution.
"""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.services import api_key_create
from config.core.numbers import ascii_decimal, is_ascii_decimal
from markets.models import Market, Resolution, Trade

pytestmark = pytest.mark.django_db

FULL_WIDTH_12 = "\uff11\uff12"
ARABIC_INDIC_12 = "\u0661\u0662"
FULL_WIDTH_HALF = "\uff10.\uff15"  # 0.5
FULL_WIDTH_100 = "\uff11\uff10\uff10"
FOREIGN = [FULL_WIDTH_12, ARABIC_INDIC_12, "1_000", "\u0967\u0968"]  # the last: Devanagari 12


@pytest.fixture
def market(make_market):
    return make_market(
        slug="rutte-nato",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=30),
    )


@pytest.fixture
def api(make_user):
    _key, raw_key = api_key_create(user=make_user("ana"), name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.mark.parametrize("text", ["12", "12.5", ".5", "5.", "-3", "+1", "1e-05", "1E3", " 7 ", 12, 12.5, Decimal("2")])
def test_ascii_decimals_pass(text):
    assert is_ascii_decimal(text)
    assert ascii_decimal(text) == Decimal(str(text).strip())


@pytest.mark.parametrize("text", [*FOREIGN, "", "abc", "NaN", "Infinity", "1,5", "0x10", True, None])
def test_everything_else_is_refused(text):
    assert not is_ascii_decimal(text)
    with pytest.raises(ValueError, match="digits 0-9"):
        ascii_decimal(text)


@pytest.mark.parametrize("text", FOREIGN)
@pytest.mark.parametrize("field", ["amount", "shares", "max_cost"])
def test_the_trade_api_refuses_unicode_digits_naming_the_field(api, market, field, text):
    body = {"outcome": "YES", "side": "buy", "amount": "5", field: text}
    response = api.post("/api/v1/markets/rutte-nato/trades/", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {field}
    assert error["message"] == f"Enter {field} with the digits 0-9 and a decimal point, e.g. 12.5."
    assert not Trade.objects.exists()


def test_the_trade_api_refuses_a_unicode_probability_and_min_proceeds(api, market):
    for body, field in [
        ({"outcome": "YES", "side": "buy", "probability": FULL_WIDTH_HALF}, "probability"),
        ({"outcome": "YES", "side": "sell", "amount": "1", "min_proceeds": FULL_WIDTH_12}, "min_proceeds"),
    ]:
        response = api.post("/api/v1/markets/rutte-nato/trades/", body, format="json")
        assert response.status_code == 400, response.content
        assert set(response.json()["error"]["fields"]) == {field}
    assert not Trade.objects.exists()


def test_the_quote_api_refuses_unicode_digits(market):
    response = APIClient().get(
        "/api/v1/markets/rutte-nato/quote/", {"outcome": "YES", "side": "buy", "shares": FULL_WIDTH_12}
    )
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {
        "shares": ["Enter shares with the digits 0-9 and a decimal point, e.g. 12.5."]
    }


def test_the_same_trade_in_ascii_digits_goes_through(api, market):
    response = api.post(
        "/api/v1/markets/rutte-nato/trades/", {"outcome": "YES", "side": "buy", "amount": "12"}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.parametrize("text", FOREIGN)
@pytest.mark.parametrize("mode", ["amount", "shares", "probability"])
def test_the_trade_form_refuses_unicode_digits(client, make_user, market, mode, text):
    client.force_login(make_user("trader"))
    params = {"outcome": "YES", "side": "buy", "mode": mode, "value": text}
    preview = client.get("/markets/rutte-nato/trade/preview/", params)
    assert "digits 0-9" in preview.content.decode()
    response = client.post("/markets/rutte-nato/trade/", params)
    assert response.status_code == 422
    assert response.context["form"].errors["value"] == [
        "Enter a number with the digits 0-9 and a decimal point, e.g. 12.5."
    ]
    assert not Trade.objects.exists()


def test_the_staff_api_refuses_unicode_liquidity_and_probabilities(make_user):
    staff = APIClient()
    staff.force_authenticate(make_user("staff", is_staff=True))
    market = {
        "slug": "new-market",
        "question": "Will it rain?",
        "kind": "binary",
        "liquidity": "100",
        "closes_at": (timezone.now() + timedelta(days=3)).isoformat(),
    }
    cases: list[tuple[dict[str, object], str]] = [
        ({"liquidity": FULL_WIDTH_100}, "liquidity"),
        ({"initial_probabilities": ["0.5", FULL_WIDTH_HALF]}, "initial_probabilities.1"),
    ]
    for extra, field in cases:
        response = staff.post("/api/v1/markets/", {**market, **extra}, format="json")
        assert response.status_code == 400, response.content
        assert set(response.json()["error"]["fields"]) == {field}
    assert not Market.objects.filter(slug="new-market").exists()


def test_the_staff_form_refuses_unicode_liquidity_and_probabilities(client, make_user):
    client.force_login(make_user("staff", is_staff=True))
    form = {
        "question": "Will it rain?",
        "kind": "binary",
        "liquidity": "100",
        "closes_at": (timezone.now() + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"),
    }
    for extra, field in [
        ({"liquidity": FULL_WIDTH_100}, "liquidity"),
        ({"initial_probabilities": f"50, {FULL_WIDTH_12}"}, "initial_probabilities"),
    ]:
        response = client.post("/markets/new/", {**form, **extra})
        assert response.status_code == 422
        assert "digits 0-9" in response.context["form"].errors[field][0]
    assert not Market.objects.exists()


def test_a_split_resolution_in_unicode_digits_is_refused(make_user, market):
    staff = APIClient()
    staff.force_authenticate(make_user("staff", is_staff=True))
    response = staff.post(
        "/api/v1/markets/rutte-nato/resolution/",
        {"kind": "split", "split": [FULL_WIDTH_HALF, "0.5"], "reason": "Half and half."},
        format="json",
    )
    assert response.status_code == 400, response.content
    assert set(response.json()["error"]["fields"]) == {"split"}
    assert not Resolution.objects.exists()
