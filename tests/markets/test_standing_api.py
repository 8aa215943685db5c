"""The standing-forecast API: state one (Idempotency-Key, errors naming fields), yours, cancel; throttled."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Scope
from markets.models import LimitOrder, StandingForecast, Trade
from tests.markets.order_helpers import key_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/markets/standing/standing-forecasts/"
BODY = {"outcome": "YES", "belief": "0.7", "band": "3", "budget": "200"}


@pytest.fixture
def market(make_market):
    return make_market(slug="standing", liquidity=100)


def state(client, body, key=None):
    extra = {"HTTP_IDEMPOTENCY_KEY": key} if key else {}
    return client.post(URL, body, format="json", **extra)


def test_stating_one_trades_to_the_band_and_arms_both_sides(market, make_user):
    client = key_client(make_user())
    response = state(client, BODY | {"expires_at": (timezone.now() + timedelta(days=3)).isoformat()})
    assert response.status_code == 201, response.content
    body = response.json()
    forecast = body["standing_forecast"]
    assert (forecast["belief"], forecast["band"]) == ("0.7000", "3.00")
    assert (forecast["buy_limit"], forecast["sell_limit"]) == ("0.6700", "0.7300")
    assert forecast["status"] == "active"
    assert {order["side"] for order in forecast["orders"]} == {"buy", "sell"}
    trade = Trade.objects.get(pk=body["trade_id"])
    assert forecast["spent"] == f"{trade.amount:.6f}"
    assert body["reserved"] == f"{200 - trade.amount:.6f}"
    assert body["replayed"] is False


def test_an_idempotency_key_states_once(market, make_user):
    client = key_client(make_user())
    first = state(client, BODY, key="sf-1")
    again = state(client, BODY, key="sf-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["replayed"] is True
    assert again.json()["standing_forecast"]["id"] == first.json()["standing_forecast"]["id"]
    assert StandingForecast.objects.count() == 1
    conflict = state(client, BODY | {"belief": "0.6"}, key="sf-1")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "idempotency_conflict"


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"belief": "0"}, "belief", 400),
        ({"belief": "1"}, "belief", 400),
        ({"belief": "abc"}, "belief", 400),
        ({"band": "0"}, "band", 400),
        ({"band": "31"}, "band", 400),
        ({"budget": "0"}, "budget", 400),
        ({"budget": "1000.5"}, "budget", 422),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at", 400),
        ({"outcome": "MAYBE"}, "outcome", 400),
    ],
)
def test_bad_input_names_its_field_and_changes_nothing(market, make_user, change, field, code):
    client = key_client(make_user())
    response = state(client, BODY | change)
    assert response.status_code == code, response.content
    assert field in response.json()["error"]["fields"], response.json()
    assert not StandingForecast.objects.exists()
    assert not Trade.objects.exists()


def test_yours_lists_them_and_cancel_ends_them(market, make_user):
    user, other = make_user(), make_user()
    client = key_client(user)
    forecast_id = state(client, BODY).json()["standing_forecast"]["id"]
    listed = client.get("/api/v1/me/standing-forecasts/?status=active").json()
    assert [row["id"] for row in listed["results"]] == [forecast_id]
    assert key_client(other).get("/api/v1/me/standing-forecasts/").json()["results"] == []

    assert key_client(other).delete(f"/api/v1/standing-forecasts/{forecast_id}/").status_code == 404
    cancelled = client.delete(f"/api/v1/standing-forecasts/{forecast_id}/")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["orders"] == []
    assert not LimitOrder.objects.filter(status="open").exists()
    again = client.delete(f"/api/v1/standing-forecasts/{forecast_id}/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "standing_not_active"
    assert client.get("/api/v1/me/standing-forecasts/?status=active").json()["results"] == []


def test_its_orders_cannot_be_cancelled_alone(market, make_user):
    client = key_client(make_user())
    order_id = state(client, BODY).json()["standing_forecast"]["orders"][0]["id"]
    response = client.delete(f"/api/v1/orders/{order_id}/")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "standing_forecast_order"


def test_writes_need_the_trade_scope(market, make_user):
    client = key_client(make_user(), scopes=[Scope.READ])
    response = state(client, BODY)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_stating_them_is_rate_limited(settings, market, make_user):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "standing_forecast": "2/min"},
    }
    client = key_client(make_user())
    codes = [state(client, BODY | {"budget": "10"}).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
