"""Contract tests of auth/token/, me/, me/positions/ and me/trades/."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create
from markets.models import Outcome
from markets.services import trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code
    return response.json()["error"]


def authed(user):
    _key, raw_key = api_key_create(user=user, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def test_a_password_buys_a_key_that_works_and_is_stored_hashed(make_user):
    user = make_user("ana", password="correct horse battery")
    response = APIClient().post(
        TOKEN, {"username": "ana", "password": "correct horse battery", "name": "my bot"}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["key"].startswith(body["prefix"])
    stored = ApiKey.objects.get(user=user)
    assert stored.name == "my bot"
    assert body["key"] not in (stored.hashed_key, stored.prefix)

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {body['key']}")
    assert client.get("/api/v1/me/").json()["username"] == "ana"
    stored.refresh_from_db()
    assert stored.last_used_at is not None


@pytest.mark.parametrize(
    "credentials",
    [{"username": "ana", "password": "wrong password"}, {"username": "nobody", "password": "correct horse battery"}],
)
def test_wrong_credentials_are_401_and_create_no_key(make_user, credentials):
    make_user("ana", password="correct horse battery")
    error = assert_error(APIClient().post(TOKEN, credentials, format="json"), 401, "invalid_credentials")
    assert error["message"] == "Wrong username or password."
    assert ApiKey.objects.count() == 0


def test_a_token_request_without_fields_is_400():
    error = assert_error(APIClient().post(TOKEN, {}, format="json"), 400, "invalid")
    assert set(error["fields"]) == {"username", "password"}


def test_token_requests_are_throttled_per_ip(make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth_token": "3/min"},
    }
    make_user("ana", password="correct horse battery")
    client = APIClient()
    statuses = [
        client.post(TOKEN, {"username": "ana", "password": "guess"}, format="json").status_code for _ in range(3)
    ]
    assert statuses == [401, 401, 401]
    throttled = client.post(TOKEN, {"username": "ana", "password": "correct horse battery"}, format="json")
    assert_error(throttled, 429, "throttled")
    assert int(throttled["Retry-After"]) >= 1
    assert ApiKey.objects.count() == 0
    other_ip = APIClient(REMOTE_ADDR="10.0.0.2")
    assert (
        other_ip.post(TOKEN, {"username": "ana", "password": "correct horse battery"}, format="json").status_code == 201
    )


def test_anonymous_reads_are_throttled_per_ip(settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "2/min"},
    }
    client = APIClient()
    assert [client.get("/api/v1/markets/").status_code for _ in range(2)] == [200, 200]
    assert_error(client.get("/api/v1/markets/"), 429, "throttled")


def test_me_shows_the_balance(make_user):
    user = make_user("ana")
    body = authed(user).get("/api/v1/me/").json()
    assert body["username"] == "ana"
    assert body["balance"] == "1000.000000"


@pytest.mark.parametrize("path", ["/api/v1/me/", "/api/v1/me/positions/", "/api/v1/me/trades/"])
def test_me_needs_credentials(path):
    assert_error(APIClient().get(path), 401, "not_authenticated")


def test_positions_show_value_and_profit(make_market, make_user):
    user = make_user("ana")
    market = make_market("rutte-nato")
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    client = authed(user)
    body = client.get("/api/v1/me/").json()
    assert body["balance"] == "994.875052"

    [position] = client.get("/api/v1/me/positions/").json()["results"]
    probability = Outcome.objects.get(market=market, code="YES").probability
    assert position["market"] == "rutte-nato"
    assert position["outcome"] == "YES"
    assert position["shares"] == "10.000000"
    assert position["net_cost"] == "5.124948"
    assert position["probability"] == probability
    value = Decimal(position["value"])
    assert value == (Decimal(10) * Decimal(repr(probability))).quantize(Decimal("0.000001"), rounding="ROUND_FLOOR")
    assert Decimal(position["profit"]) == value - Decimal("5.124948")


def test_my_trades_are_mine_newest_first(make_market, make_user):
    user, other = make_user("ana"), make_user("bo")
    market = make_market("rutte-nato")
    trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="10"))
    trade_execute(user=other, market=market, request=trade_request("NO", "buy", shares="3"))
    trade_execute(user=user, market=market, request=trade_request("YES", "sell", shares="4"))
    trades = authed(user).get("/api/v1/me/trades/").json()["results"]
    assert [(t["side"], t["shares"], t["username"]) for t in trades] == [
        ("sell", "4.000000", "ana"),
        ("buy", "10.000000", "ana"),
    ]


@pytest.mark.parametrize("path", ["/api/v1/me/trades/", "/api/v1/me/positions/"])
def test_my_lists_use_a_constant_number_of_queries(make_market, make_user, settings, path):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    user = make_user("ana")
    for index in range(4):
        market = make_market(f"market-{index}")
        trade_execute(user=user, market=market, request=trade_request("YES", "buy", shares="1"))
        trade_execute(user=user, market=market, request=trade_request("NO", "buy", shares="1"))
    client = authed(user)
    client.get(path)  # the key's first use records last_used_at; later requests within a minute do not
    counts = []
    for size in (1, 8):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(path, {"page_size": size})
        assert len(response.json()["results"]) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
