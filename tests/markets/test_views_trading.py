"""The trade panel: previews (htmx) and trades, with every error path shown in plain words."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import Account
from markets.models import Market, Position, Trade
from markets.services import market_close, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def market(make_market):
    return make_market("rutte")


@pytest.fixture
def trader(client, make_user):
    user = make_user("trader")
    client.force_login(user)
    return user


def balance(user):
    return Account.objects.get(user=user).balance


def test_preview_by_amount_shows_cost_shares_average_and_probability_after(client, market, trader):
    response = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "10"}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "You pay" in body
    assert "10.00 cr" in body
    assert "Average price" in body
    assert "Yes after" in body
    assert 'name="bound" value="10' in body
    assert not Trade.objects.exists()


def test_preview_by_shares_matches_the_known_lmsr_value(client, market, trader):
    body = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "shares", "value": "10"}
    ).content.decode()
    # b=100, q=(0,0): buying 10 YES costs 5.124948 and leaves P(YES)=0.524979.
    assert "5.12 cr" in body
    assert "52.5%" in body


def test_preview_by_forecast_moves_price_to_target(client, market, trader):
    body = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "probability", "value": "70"}
    ).content.decode()
    assert "Yes after</dt><dd>70.0%" in body


def test_forecast_below_the_price_on_a_binary_market_buys_the_other_side(client, market, trader):
    body = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "probability", "value": "30"}
    ).content.decode()
    assert "Yes after</dt><dd>30.0%" in body
    assert "buys No shares" in body


def test_preview_warns_when_the_trade_costs_more_than_the_balance(client, market, trader):
    body = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "shares", "value": "5000"}
    ).content.decode()
    assert "costs more than your balance of 1,000.00 credits" in body


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (
            {"outcome": "YES", "side": "buy", "mode": "amount", "value": "-5"},
            "Enter an amount of at least 0.000001 credits.",
        ),
        ({"outcome": "YES", "side": "buy", "mode": "amount", "value": "abc"}, "Enter a number, like 25 or 12.5."),
        ({"outcome": "MAYBE", "side": "buy", "mode": "amount", "value": "5"}, "Choose an outcome of this market."),
        ({"outcome": "YES", "side": "hold", "mode": "amount", "value": "5"}, "Choose to buy or to sell."),
        (
            {"outcome": "YES", "side": "buy", "mode": "odds", "value": "5"},
            "Choose to trade by amount, shares or forecast.",
        ),
        ({"outcome": "YES", "side": "buy", "mode": "probability", "value": "100"}, "between 0.01% and 99.99%"),
        ({"outcome": "YES", "side": "sell", "mode": "amount", "value": "1000"}, "No number of shares sold can pay"),
    ],
)
def test_preview_errors_are_plain_words_not_500s(client, market, trader, params, message):
    response = client.get("/markets/rutte/trade/preview/", params)
    assert response.status_code == 200
    body = response.content.decode()
    assert message in body
    # Django's own validator wording never reaches the page.
    assert "Ensure this value" not in body
    assert "Select a valid choice" not in body


def test_preview_on_a_closed_market_says_so(client, market, trader):
    market_close(market=market)
    body = client.get(
        "/markets/rutte/trade/preview/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"}
    ).content.decode()
    assert "closed for trading" in body


def test_buy_by_amount_with_htmx_updates_price_position_and_balance(client, market, trader):
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "100"}, **HTMX
    )
    assert response.status_code == 200
    body = response.content.decode()
    trade = Trade.objects.get()
    assert trade.amount <= Decimal("100")
    assert trade.side == "buy"
    assert balance(trader) == Decimal("1000") - trade.amount
    assert "Bought" in body
    assert 'id="live-region"' in body
    assert 'hx-swap-oob="true"' in body
    assert 'id="my-position"' in body
    assert f"{balance(trader):,.2f}" in body  # the nav balance, out of band
    price = Market.objects.get(pk=market.pk).outcomes.get(code="YES").probability
    assert f"{price * 100:.1f}%" in body


def test_buy_by_forecast_moves_the_price_there(client, market, trader):
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "probability", "value": "65"}, **HTMX
    )
    assert response.status_code == 200
    assert round(Market.objects.get(pk=market.pk).outcomes.get(code="YES").probability, 3) == 0.65


def test_sell_part_of_a_position(client, market, trader):
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="40"))
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "sell", "mode": "shares", "value": "15"}, **HTMX
    )
    assert response.status_code == 200
    assert "Sold 15.00 Yes shares" in response.content.decode()
    assert Position.objects.get(user=trader, outcome__code="YES").shares == Decimal("25")


def test_without_htmx_a_trade_redirects_back_with_a_message(client, market, trader):
    response = client.post("/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "10"})
    assert response.status_code == 302
    assert response["Location"] == "/markets/rutte/"
    assert "Bought" in client.get("/markets/rutte/").content.decode()


def test_a_resent_trade_form_trades_once(client, market, trader):
    page = client.get("/markets/rutte/").content.decode()
    token = re.search(r'name="submission" value="([0-9a-f]{32})"', page)
    assert token is not None, "the trade form carries a one-time submission token"
    form = {"outcome": "YES", "side": "buy", "mode": "amount", "value": "10", "submission": token.group(1)}
    first = client.post("/markets/rutte/trade/", form)
    second = client.post("/markets/rutte/trade/", form)  # a double click, or the browser resending
    assert first.status_code == second.status_code == 302
    assert Trade.objects.filter(user=trader).count() == 1
    assert balance(trader) == Decimal("1000") - Trade.objects.get(user=trader).amount
    other = client.get("/markets/rutte/").content.decode()
    assert f'value="{token.group(1)}"' not in other, "every rendered form gets a new token"


def test_spending_more_than_the_balance_is_refused_in_plain_words(client, market, trader):
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "shares", "value": "5000"}, **HTMX
    )
    body = response.content.decode()
    assert "but your balance is 1,000.00" in body or "but your balance is 1000.00" in body
    assert not Trade.objects.exists()
    assert balance(trader) == Decimal("1000")


def test_amount_above_the_balance_is_refused(client, market, trader):
    client.post("/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "1500"}, **HTMX)
    assert not Trade.objects.exists()


def test_selling_shares_you_do_not_hold_is_refused(client, market, trader):
    body = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "sell", "mode": "shares", "value": "5"}, **HTMX
    ).content.decode()
    assert "You hold 0.00 shares of Yes" in body
    assert not Trade.objects.exists()


def test_trading_on_a_closed_market_is_refused(client, market, trader):
    market_close(market=market)
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"}, **HTMX
    )
    assert "closed for trading" in response.content.decode()
    assert not Trade.objects.exists()


def test_trading_after_the_close_time_is_refused_even_before_the_sweeper_runs(client, market, trader):
    Market.objects.filter(pk=market.pk).update(closes_at=timezone.now() - timedelta(minutes=1))
    response = client.post("/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"})
    assert response.status_code == 422
    assert "closed for trading" in response.content.decode()
    assert not Trade.objects.exists()


def test_price_moved_past_the_previewed_bound_is_refused(client, market, trader, make_user):
    params = {"outcome": "YES", "side": "buy", "mode": "shares", "value": "20"}
    preview = client.get("/markets/rutte/trade/preview/", params)
    quoted_for = preview.context["quoted_for"]
    bound = preview.context["quote"].amount
    trade_execute(user=make_user(), market=market, request=trade_request("YES", "buy", amount="200"))
    response = client.post("/markets/rutte/trade/", {**params, "bound": str(bound), "quoted_for": quoted_for}, **HTMX)
    body = response.content.decode()
    assert "The price moved" in body
    assert "more than your limit" in body
    assert not Trade.objects.filter(user=trader).exists()


def test_bound_for_a_different_request_is_ignored(client, market, trader):
    client.post(
        "/markets/rutte/trade/",
        {"outcome": "YES", "side": "buy", "mode": "shares", "value": "20", "bound": "0.01", "quoted_for": "other"},
        **HTMX,
    )
    assert Trade.objects.filter(user=trader).count() == 1


def test_tampered_bound_is_a_form_error(client, market, trader):
    response = client.post(
        "/markets/rutte/trade/",
        {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5", "bound": "lots"},
        **HTMX,
    )
    assert response.status_code == 200
    assert "The previewed price was not understood" in response.content.decode()
    assert not Trade.objects.exists()


def test_anonymous_visitor_is_asked_to_log_in(client, market):
    response = client.post(
        "/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"}, **HTMX
    )
    assert "Log in or sign up to trade." in response.content.decode()
    assert not Trade.objects.exists()


def test_trade_form_requires_csrf(market, trader):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(trader)
    response = strict.post("/markets/rutte/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"})
    assert response.status_code == 403
    assert not Trade.objects.exists()


def test_multiple_choice_trade(make_market, client, trader):
    make_market("next-sg", kind="multiple")
    response = client.post(
        "/markets/next-sg/trade/", {"outcome": "KALLAS", "side": "buy", "mode": "probability", "value": "40"}, **HTMX
    )
    assert response.status_code == 200
    market = Market.objects.get(slug="next-sg")
    assert round(market.outcomes.get(code="KALLAS").probability, 3) == 0.4
    # A forecast below the price on a multiple-choice market sells, and needs shares.
    body = client.post(
        "/markets/next-sg/trade/", {"outcome": "RUTTE", "side": "buy", "mode": "probability", "value": "5"}, **HTMX
    ).content.decode()
    assert "You hold 0.00 shares of Rutte" in body
