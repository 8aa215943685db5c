"""Contract tests of quotes and trades: responses, error statuses, and the database after each write."""

import threading
from decimal import Decimal

import pytest
from django.db import connection
from rest_framework.renderers import JSONRenderer
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create, api_key_revoke, wallet_get
from markets.apis.common import by_code
from markets.apis.trading import MarketTradesApi, executed_trade_data
from markets.models import IdempotencyKey, Market, Position, Trade
from markets.selectors.prices import market_snapshot
from markets.services import market_close, markets_reconcile, trade_execute
from markets.trade_request import TradeRequest
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

TRADES = "/api/v1/markets/rutte-nato/trades/"
QUOTE = "/api/v1/markets/rutte-nato/quote/"
RUTTE_QUESTION = "Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?"


@pytest.fixture
def market(make_market):
    return make_market("rutte-nato", question=RUTTE_QUESTION)


@pytest.fixture
def trader(make_user):
    return make_user("ana")


@pytest.fixture
def api(trader):
    _key, raw_key = api_key_create(user=trader, name="tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    return body["error"]


def assert_nothing_traded(user, balance=Decimal("1000")):
    assert Trade.objects.count() == 0
    assert wallet_get(user=user).balance == balance
    assert not Position.objects.filter(user=user).exists()


# Quotes


def test_quote_by_shares_prices_the_reference_trade_and_writes_nothing(market, trader):
    response = APIClient().get(QUOTE, {"outcome": "YES", "side": "buy", "shares": "10"})
    assert response.status_code == 200
    body = response.json()
    assert body["amount"] == "5.124948"
    assert body["shares"] == "10.000000"
    assert body["average_price"] == "0.512494"  # 0.5124948, rounded down like every valuation
    assert body["probabilities_before"] == {"YES": 0.5, "NO": 0.5}
    assert body["probabilities_after"]["YES"] == pytest.approx(0.524979, abs=1e-6)
    assert_nothing_traded(trader)
    assert market.outcomes.get(code="YES").shares_outstanding == 0


def test_quote_by_amount_and_by_probability(market):
    by_amount = APIClient().get(QUOTE, {"outcome": "YES", "side": "buy", "amount": "10"}).json()
    assert by_amount["shares"] == "19.090282"
    by_target = APIClient().get(QUOTE, {"outcome": "YES", "side": "buy", "probability": "0.7"}).json()
    assert by_target["probabilities_after"]["YES"] == pytest.approx(0.7, abs=1e-4)


def test_quote_of_a_sale(market, trader):
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="10"))
    body = APIClient().get(QUOTE, {"outcome": "YES", "side": "sell", "shares": "10"}).json()
    assert Decimal(body["amount"]) < Decimal("5.124948")
    assert body["probabilities_after"]["YES"] == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"side": "buy", "shares": "10"}, "outcome"),
        ({"outcome": "YES", "side": "hold", "shares": "10"}, "side"),
        ({"outcome": "YES", "side": "buy"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "10", "amount": "5"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "-1"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "NaN"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "1e400"}, "shares"),
        ({"outcome": "MAYBE", "side": "buy", "shares": "10"}, "outcome"),
        ({"outcome": "YES", "side": "buy", "probability": "0.3"}, "probability"),
        ({"outcome": "YES", "side": "buy", "probability": "1.5"}, "probability"),
    ],
)
def test_quote_rejects_bad_input(market, query, field):
    error = assert_error(APIClient().get(QUOTE, query), 400, "invalid")
    assert field in error["fields"]


def test_quote_on_a_closed_market_is_422(market):
    market_close(market=market)
    assert_error(APIClient().get(QUOTE, {"outcome": "YES", "side": "buy", "shares": "1"}), 422, "market_closed")


def test_quote_of_an_unknown_market_is_404():
    assert_error(APIClient().get("/api/v1/markets/nope/quote/?outcome=YES&side=buy&shares=1"), 404, "not_found")


def test_a_forecast_above_the_price_buys_the_outcome_up_to_it(market):
    body = APIClient().get(QUOTE, {"outcome": "YES", "forecast": "true", "probability": "0.7"}).json()
    assert (body["outcome"], body["side"]) == ("YES", "buy")
    assert body["probabilities_after"]["YES"] == pytest.approx(0.7, abs=1e-4)


def test_a_forecast_below_the_price_buys_the_other_outcome_on_a_binary_market(api, market, trader):
    """The website's "my forecast is 30%" without holding YES: it buys NO until YES is at 30%."""
    quote = APIClient().get(QUOTE, {"outcome": "YES", "forecast": "true", "probability": "0.3"}).json()
    assert (quote["outcome"], quote["side"]) == ("NO", "buy")
    assert quote["probabilities_after"]["YES"] == pytest.approx(0.3, abs=1e-4)
    response = api.post(TRADES, {"outcome": "YES", "forecast": True, "probability": "0.3"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["trade"]["outcome"], body["trade"]["side"]) == ("NO", "buy")
    assert body["position"]["outcome"] == "NO"
    assert body["probabilities"]["YES"] == pytest.approx(0.3, abs=1e-4)
    assert markets_reconcile() == []


def test_a_forecast_below_the_price_sells_on_a_larger_market(make_market, api, trader):
    market = make_market(
        slug="nato",
        question="Who will be the next NATO Secretary-General?",
        kind=Market.Kind.MULTIPLE,
        outcomes=[("RUTTE", "Rutte"), ("KALLAS", "Kallas"), ("OTHER", "Other")],
        liquidity=100,
    )
    trade_execute(user=trader, market=market, request=trade_request("RUTTE", "buy", shares="50"))
    body = {"outcome": "RUTTE", "forecast": True, "probability": "0.4", "min_proceeds": "1"}
    response = api.post("/api/v1/markets/nato/trades/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["trade"]["side"] == "sell"
    assert response.json()["probabilities"]["RUTTE"] == pytest.approx(0.4, abs=1e-4)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"outcome": "YES", "forecast": "true", "side": "buy", "probability": "0.7"}, "side"),  # one or the other
        ({"outcome": "YES", "forecast": "true", "shares": "3"}, "side"),  # a forecast is a probability
        ({"outcome": "YES", "probability": "0.7"}, "side"),  # no side and no forecast
    ],
)
def test_a_forecast_is_a_probability_without_a_side(market, query, field):
    error = assert_error(APIClient().get(QUOTE, query), 400, "invalid")
    assert field in error["fields"]


# Trades


def test_buy_returns_the_trade_balance_and_position_and_writes_them(api, market, trader):
    response = api.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "10"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["trade"]["amount"] == "5.124948"
    assert body["trade"]["username"] == "ana"
    assert body["balance"] == "994.875052"
    assert body["position"] == {"outcome": "YES", "shares": "10.000000"}
    assert body["probabilities"]["YES"] == pytest.approx(0.524979, abs=1e-6)
    assert body["replayed"] is False

    trade = Trade.objects.get()
    assert (trade.pk, trade.user, trade.side, trade.shares) == (body["trade"]["id"], trader, "buy", Decimal(10))
    assert wallet_get(user=trader).balance == Decimal("994.875052")
    assert Position.objects.get(user=trader).shares == Decimal(10)
    assert markets_reconcile() == []


def test_a_trade_response_is_the_output_serializer_s_without_building_it(market, trader, make_user):
    """The view converts a fresh trade's result field by field (executed_trade_data); the bytes are those of
    MarketTradesApi.OutputSerializer, for buys and sales by shares, amount and probability."""
    requests = [
        trade_request("YES", "buy", shares="10"),
        trade_request("NO", "buy", amount="3.5"),
        trade_request("YES", "sell", shares="2.25"),
        TradeRequest(outcome="NO", side="buy", probability=Decimal("0.61")),
    ]
    for request in requests:
        result = trade_execute(user=trader, market=market, request=request)
        codes = result.outcome_codes
        expected = MarketTradesApi.OutputSerializer(
            {
                "trade": result.trade,
                "probabilities": by_code(codes, result.probabilities),
                "balance": result.balance,
                "position": {"outcome": result.trade.outcome.code, "shares": result.position_shares},
                "replayed": False,
            },
            context={"outcome_codes": codes},
        ).data
        assert JSONRenderer().render(executed_trade_data(result)) == JSONRenderer().render(expected)


def test_a_trade_reads_its_market_and_counts_its_limit_in_one_redis_round_trip(api, market, redis_writes):
    """With the key remembered and the market's snapshot cached, the request itself goes to Redis once: an MGET of
    the key's entry and the snapshot (the market's id), and the script that counts the trade limit, in one write
    (accounts/key_requests.py; tests/markets/test_trade_round_trips.py pins the trip after the commit too)."""
    body = {"outcome": "YES", "side": "buy", "amount": "1"}
    assert api.post(TRADES, body, format="json").status_code == 201
    market_snapshot(slug=market.slug)
    redis_writes.clear()
    assert api.post(TRADES, body, format="json").status_code == 201
    assert redis_writes == [["MGET", "EVALSHA"]]


def test_sell_by_amount_with_min_proceeds(api, market, trader):
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="20"))
    response = api.post(
        TRADES, {"outcome": "YES", "side": "sell", "amount": "2", "min_proceeds": "1.99"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Decimal(response.json()["trade"]["amount"]) >= Decimal("2")
    assert Trade.objects.filter(side="sell").count() == 1
    assert markets_reconcile() == []


def test_trading_needs_credentials(market, trader):
    response = APIClient().post(TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json")
    assert_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Token"
    assert_nothing_traded(trader)


def test_an_unknown_or_revoked_key_is_401(api, market, trader):
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token fc_not-a-real-key")
    assert_error(stranger.get("/api/v1/me/"), 401, "authentication_failed")
    api_key_revoke(api_key=ApiKey.objects.get(user=trader))
    assert_error(
        api.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json"), 401, "authentication_failed"
    )
    assert_nothing_traded(trader)


def test_a_session_needs_its_csrf_token(market, trader):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(trader)
    refused = browser.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json")
    assert_error(refused, 403, "permission_denied")
    assert_nothing_traded(trader)

    secret = "abcdefghijklmnopqrstuvwxyzABCDEF"  # a CSRF secret: 32 letters, sent as cookie and header
    browser.cookies["csrftoken"] = secret
    accepted = browser.post(
        TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json", HTTP_X_CSRFTOKEN=secret
    )
    assert accepted.status_code == 201, accepted.content
    assert Trade.objects.filter(user=trader).count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"side": "buy", "shares": "1"}, "outcome"),
        ({"outcome": "YES", "side": "buy"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "abc"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "1", "probability": 0.6}, "shares"),
        ({"outcome": "NOPE", "side": "buy", "shares": "1"}, "outcome"),
        ({"outcome": "YES", "side": "buy", "shares": "0.0000001"}, "shares"),
        ({"outcome": "YES", "side": "buy", "shares": "1", "max_cost": "-3"}, "max_cost"),
    ],
)
def test_invalid_trades_are_400_and_change_nothing(api, market, trader, body, field):
    error = assert_error(api.post(TRADES, body, format="json"), 400, "invalid")
    assert field in error["fields"]
    assert_nothing_traded(trader)


def test_malformed_json_is_400_and_other_media_types_415(api, market, trader):
    assert_error(api.post(TRADES, "{not json", content_type="application/json"), 400, "parse_error")
    assert_error(api.post(TRADES, "outcome=YES", content_type="text/plain"), 415, "unsupported_media_type")
    assert_nothing_traded(trader)


def test_insufficient_funds_is_422_and_changes_nothing(api, market, trader):
    error = assert_error(
        api.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "5000"}, format="json"), 422, "insufficient_funds"
    )
    assert "amount" in error["fields"]
    assert_nothing_traded(trader)


def test_selling_shares_not_held_is_422(api, market, trader):
    assert_error(
        api.post(TRADES, {"outcome": "YES", "side": "sell", "shares": "1"}, format="json"), 422, "insufficient_shares"
    )
    assert_nothing_traded(trader)


def test_a_price_past_max_cost_is_409_and_changes_nothing(api, market, trader):
    body = {"outcome": "YES", "side": "buy", "shares": "10", "max_cost": "5.00"}
    error = assert_error(api.post(TRADES, body, format="json"), 409, "price_moved")
    assert "max_cost" in error["fields"]
    assert_nothing_traded(trader)


def test_trading_a_closed_market_is_422(api, market, trader):
    market_close(market=market)
    assert_error(
        api.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json"), 422, "market_closed"
    )
    assert_nothing_traded(trader)


def test_trading_an_unknown_market_is_404(api, trader):
    response = api.post("/api/v1/markets/nope/trades/", {"outcome": "YES", "side": "buy", "shares": "1"}, format="json")
    assert_error(response, 404, "not_found")


def test_trades_are_throttled_per_key_with_retry_after(api, market, trader, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "trade": "2/min"},
    }
    body = {"outcome": "YES", "side": "buy", "shares": "1"}
    assert api.post(TRADES, body, format="json").status_code == 201
    assert api.post(TRADES, body, format="json").status_code == 201
    throttled = api.post(TRADES, body, format="json")
    assert_error(throttled, 429, "throttled")
    assert 1 <= int(throttled["Retry-After"]) <= 60
    assert Trade.objects.count() == 2


def test_the_trade_limit_is_per_account_however_many_keys_it_holds(market, trader, settings):
    """Issue 8, finding 3: the limit was per key, so three keys gave one account three times the rate."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "trade": "2/min"},
    }
    clients = []
    for number in range(3):
        _key, raw_key = api_key_create(user=trader, name=f"bot {number}")
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
        clients.append(client)
    body = {"outcome": "YES", "side": "buy", "shares": "1"}
    statuses = [client.post(TRADES, body, format="json").status_code for client in clients]
    assert statuses == [201, 201, 429]
    assert Trade.objects.filter(user=trader).count() == 2


def test_throttling_fails_open_when_redis_is_down(api, market, trader, settings):
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "trade": "1/min"},
    }
    body = {"outcome": "YES", "side": "buy", "shares": "1"}
    assert [api.post(TRADES, body, format="json").status_code for _ in range(3)] == [201, 201, 201]
    assert Trade.objects.count() == 3


def test_public_trade_list(api, market, trader):
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="10"))
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", shares="4"))
    body = APIClient().get(TRADES).json()
    assert [(t["outcome"], t["shares"], t["username"]) for t in body["results"]] == [
        ("NO", "4.000000", "ana"),
        ("YES", "10.000000", "ana"),
    ]
    assert body["results"][1]["probabilities_before"] == {"YES": 0.5, "NO": 0.5}


# Idempotency


def test_the_same_key_and_body_trade_once(api, market, trader):
    body = {"outcome": "YES", "side": "buy", "amount": "10"}
    first = api.post(TRADES, body, format="json", HTTP_IDEMPOTENCY_KEY="order-1")
    again = api.post(
        TRADES, {"amount": "10.0", "side": "buy", "outcome": "YES"}, format="json", HTTP_IDEMPOTENCY_KEY="order-1"
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["trade"] == first.json()["trade"]
    assert again.json()["replayed"] is True
    assert Trade.objects.count() == 1
    assert wallet_get(user=trader).balance == Decimal(first.json()["balance"])


def test_the_same_key_with_another_body_is_409(api, market, trader):
    api.post(TRADES, {"outcome": "YES", "side": "buy", "shares": "10"}, format="json", HTTP_IDEMPOTENCY_KEY="order-2")
    conflict = api.post(
        TRADES, {"outcome": "YES", "side": "buy", "shares": "11"}, format="json", HTTP_IDEMPOTENCY_KEY="order-2"
    )
    assert_error(conflict, 409, "idempotency_conflict")
    assert Trade.objects.count() == 1


def test_a_bound_is_part_of_the_request_under_a_key(api, market, trader):
    body = {"outcome": "YES", "side": "buy", "shares": "10"}
    api.post(TRADES, body, format="json", HTTP_IDEMPOTENCY_KEY="order-3")
    conflict = api.post(TRADES, {**body, "max_cost": "6"}, format="json", HTTP_IDEMPOTENCY_KEY="order-3")
    assert_error(conflict, 409, "idempotency_conflict")
    assert Trade.objects.count() == 1


def test_an_empty_idempotency_key_is_400(api, market, trader):
    response = api.post(
        TRADES, {"outcome": "YES", "side": "buy", "shares": "1"}, format="json", HTTP_IDEMPOTENCY_KEY=""
    )
    assert_error(response, 400, "invalid")
    assert_nothing_traded(trader)


@pytest.mark.django_db(transaction=True)
def test_the_same_key_sent_concurrently_trades_once(make_market, make_user):
    make_market("rutte-nato")
    trader = make_user("racer")
    _key, raw_key = api_key_create(user=trader, name="race")
    body = {"outcome": "YES", "side": "buy", "shares": "10"}
    barrier = threading.Barrier(2)
    statuses: list[int] = []
    errors: list[BaseException] = []

    def send() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
            barrier.wait(timeout=10)
            statuses.append(client.post(TRADES, body, format="json", HTTP_IDEMPOTENCY_KEY="race-1").status_code)
        except BaseException as error:  # reported below: a thread's exception would otherwise vanish
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    assert sorted(statuses) == [200, 201]
    assert Trade.objects.filter(user=trader).count() == 1
    assert IdempotencyKey.objects.filter(user=trader, key="race-1").count() == 1
    assert wallet_get(user=trader).balance == Decimal("1000") - Decimal("5.124948")
    assert markets_reconcile() == []
