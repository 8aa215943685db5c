"""Standing forecasts on the website: the market page's form and list with cancel buttons, the profile's standing
beliefs, and scoring through their fills."""

from decimal import Decimal

import pytest
from django.urls import reverse

from forecast.models import MarketScore
from forecast.services import market_score
from markets.models import LimitOrder, StandingForecast, Trade
from markets.services import market_resolve, trade_execute
from markets.services.settlement import market_settle
from markets.services.standing import StandingRequest, standing_forecast_create
from tests.factories import trade_request

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market(slug="standing-page", question="Will the page stand?", liquidity=100)


def test_the_market_page_offers_the_form_and_states_one(client, market, make_user):
    user = make_user("stander")
    client.force_login(user)
    page = client.get(reverse("markets:detail", args=[market.slug]))
    assert b'id="standing-panel"' in page.content
    response = client.post(
        reverse("markets:standing-create", args=[market.slug]),
        {"outcome": "YES", "belief": "70", "band": "3", "budget": "50"},
    )
    assert response.status_code == 302
    assert response["Location"].endswith("#standing-panel")
    forecast = StandingForecast.objects.get(user=user)
    assert (forecast.belief, forecast.band, forecast.budget) == (Decimal("0.7"), Decimal("0.03"), Decimal("50"))
    page = client.get(response["Location"])
    text = page.content.decode()
    assert "buying below 67.00%, selling above 73.00%" in text
    assert reverse("markets:standing-cancel", args=[forecast.pk]) in text


def test_refusals_show_next_to_their_field(client, market, make_user):
    client.force_login(make_user())
    response = client.post(
        reverse("markets:standing-create", args=[market.slug]),
        {"outcome": "YES", "belief": "99", "band": "3", "budget": "5000"},
    )
    assert response.status_code == 422
    assert "choose a narrower band" in response.content.decode()
    response = client.post(
        reverse("markets:standing-create", args=[market.slug]),
        {"outcome": "YES", "belief": "70", "band": "3", "budget": "5000"},
    )
    assert response.status_code == 422
    assert "available" in response.content.decode()
    response = client.post(
        reverse("markets:standing-create", args=[market.slug]),
        {"outcome": "YES", "belief": "100", "band": "3", "budget": "5"},
    )
    assert "strictly between 0% and 100%" in response.content.decode()
    assert not StandingForecast.objects.exists()


def test_the_cancel_button_ends_it_and_nobody_else_can(client, market, make_user):
    owner = make_user()
    forecast = standing_forecast_create(
        user=owner,
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.7"), band_points=Decimal("3"), budget=Decimal("50")),
    ).forecast
    client.force_login(make_user())
    assert client.post(reverse("markets:standing-cancel", args=[forecast.pk])).status_code == 404
    client.force_login(owner)
    response = client.post(reverse("markets:standing-cancel", args=[forecast.pk]))
    assert response.status_code == 302
    forecast.refresh_from_db()
    assert forecast.status == StandingForecast.Status.CANCELLED
    assert not LimitOrder.objects.filter(status="open").exists()


def test_the_profile_shows_active_ones_as_standing_beliefs(client, market, make_user):
    user = make_user("believer")
    standing_forecast_create(
        user=user,
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.7"), band_points=Decimal("3"), budget=Decimal("50")),
    )
    text = client.get(reverse("forecast:user-profile", args=["believer"])).content.decode()
    assert "Standing beliefs" in text
    assert "Will the page stand?" in text
    assert "Yes 70.0%" in text
    assert "kept within 3 points" in text
    # The budget is the owner's business.
    assert "50.00" not in text.split("Standing beliefs")[1].split("</section>")[0]


def test_its_fills_are_scored_like_any_forecast(market, make_user):
    forecaster, trader, staff = make_user(), make_user(), make_user(is_staff=True)
    standing_forecast_create(
        user=forecaster,
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.5"), band_points=Decimal("3"), budget=Decimal("50")),
    )
    trade_execute(user=trader, market=market, request=trade_request("NO", "buy", amount="30"))
    # The forecaster never traded by hand: its only trade is the fill.
    assert Trade.objects.filter(user=forecaster, order__standing_forecast__isnull=False).count() == 1
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Known")
    market_settle(market_id=market.pk)
    market_score(market_id=market.pk)
    score = MarketScore.objects.get(user=forecaster, market=market)
    assert score.coverage > 0
    assert score.brier is not None
