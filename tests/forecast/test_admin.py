"""The admin shows scores read-only and can re-score markets."""

import pytest

from forecast import services
from forecast.models import LeaderboardEntry, MarketScore

pytestmark = pytest.mark.django_db


def test_staff_list_scores_and_rescore_a_market(client, traded_market):
    scenario = traded_market()
    scenario.resolve(outcome="YES", at=scenario.closes_at)
    services.market_score(market_id=scenario.market.pk)
    before = sorted(MarketScore.objects.values_list("user_id", "profit", "peer"))
    client.force_login(scenario.staff)
    page = client.get("/admin/forecast/marketscore/")
    assert page.status_code == 200
    assert scenario.market.question in page.content.decode()
    assert client.get(f"/admin/forecast/marketscore/{MarketScore.objects.earliest('pk').pk}/delete/").status_code == 403

    ids = [str(pk) for pk in MarketScore.objects.values_list("pk", flat=True)]
    response = client.post("/admin/forecast/marketscore/", {"action": "rescore", "_selected_action": ids})
    assert response.status_code == 302
    assert sorted(MarketScore.objects.values_list("user_id", "profit", "peer")) == before
    assert LeaderboardEntry.objects.filter(metric="profit", period="all").count() == 3


def test_forecasters_cannot_open_the_score_admin(client, make_user):
    client.force_login(make_user())
    assert client.get("/admin/forecast/marketscore/").status_code == 302
