"""The leaderboard and profile pages and the score API: content, public access, bad input, query counts."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from forecast import services
from forecast.models import LeaderboardEntry, MarketScore
from tests.forecast.conftest import DAY

pytestmark = pytest.mark.django_db


def count_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return len(queries)


def test_the_leaderboard_page_is_public_and_shows_ranked_forecasters(client, scored):
    _first, _ = scored
    response = client.get("/leaderboard/?metric=profit&period=all")
    assert response.status_code == 200
    body = response.content.decode()
    best = LeaderboardEntry.objects.filter(metric="profit", period="all").select_related("user").order_by("rank")[0]
    assert best.user.username in body
    assert f'href="/users/{best.user.username}/"' in body
    assert 'aria-current="page"' in body
    assert "<svg" in body
    assert "<circle" in body  # the site calibration has points


def test_the_leaderboard_page_ignores_bad_filters(client, scored):
    # (A NUL character anywhere in an address is refused earlier, with a 400: tests/test_nul_characters.py.)
    response = client.get("/leaderboard/?metric=nonsense&period=forever&page=-3")
    assert response.status_code == 200
    assert response.context["board"].metric == "profit"
    assert response.context["board"].period == "all"


def test_the_leaderboard_tabs_swap_only_the_board_for_htmx(client, scored):
    response = client.get("/leaderboard/?metric=brier&period=30d", headers={"HX-Request": "true"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "<html" not in body
    assert "Mean Brier score" in body


def test_leaderboard_page_queries_do_not_grow_with_the_users_shown(client, scored, make_user):
    few = count_queries(client, "/leaderboard/?metric=peer")
    now = timezone.now()
    extra = [make_user(f"extra{index}") for index in range(12)]
    LeaderboardEntry.objects.bulk_create(
        LeaderboardEntry(metric="peer", period="all", user=user, rank=100 + index, value=0, markets=1, built_at=now)
        for index, user in enumerate(extra)
    )
    assert count_queries(client, "/leaderboard/?metric=peer") == few


def test_the_profile_shows_the_track_record_calibration_and_markets(client, scored):
    first, _second = scored
    alice = first.traders["alice"]
    response = client.get(f"/users/{alice.username}/")
    assert response.status_code == 200
    body = response.content.decode()
    assert first.market.question in body
    assert "<svg" in body
    assert "<circle" in body
    assert response.context["record"].markets == 1
    score = MarketScore.objects.get(user=alice)
    assert response.context["record"].profit == score.profit


def test_an_unknown_profile_is_404(client, db):
    assert client.get("/users/nobody-here/").status_code == 404


def test_profile_queries_do_not_grow_with_the_markets_shown(client, traded_market, settings):
    one = traded_market("one")
    one.resolve(outcome="YES", at=one.closes_at)
    services.market_score(market_id=one.market.pk)
    carol = one.traders["carol"]
    few = count_queries(client, f"/users/{carol.username}/")
    # carol trades three more markets that resolve.
    for slug in ("two", "three", "four"):
        scenario = traded_market(slug)
        scenario.resolve(outcome="NO", at=scenario.closes_at)
        services.market_score(market_id=scenario.market.pk)
        MarketScore.objects.filter(market=scenario.market, user=scenario.traders["carol"]).update(user=carol)
    assert MarketScore.objects.filter(user=carol).count() == 4
    assert count_queries(client, f"/users/{carol.username}/") == few


def test_the_leaderboard_api_returns_a_stored_board(scored):
    response = APIClient().get("/api/v1/leaderboard/?metric=baseline&period=all&limit=2")
    assert response.status_code == 200
    data = response.json()
    assert data["metric"] == "baseline"
    assert data["total"] == 6
    assert len(data["entries"]) == 2
    stored = LeaderboardEntry.objects.filter(metric="baseline", period="all").order_by("rank", "user__username")[:2]
    assert [(e["username"], Decimal(e["value"]), e["rank"]) for e in data["entries"]] == [
        (entry.user.username, entry.value, entry.rank) for entry in stored
    ]
    assert len(data["calibration"]) == 10
    assert data["built_at"] is not None


@pytest.mark.parametrize(
    "params",
    [{"metric": "luck"}, {"period": "1y"}, {"limit": "0"}, {"limit": "abc"}, {"offset": "-1"}, {"limit": "10000"}],
)
def test_the_leaderboard_api_refuses_bad_filters_in_the_error_shape(db, params):
    response = APIClient().get("/api/v1/leaderboard/", params)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_leaderboard_api_queries_do_not_grow_with_the_entries(scored, make_user):
    client = APIClient()
    few = count_queries(client, "/api/v1/leaderboard/?metric=profit&limit=200")
    now = timezone.now()
    LeaderboardEntry.objects.bulk_create(
        LeaderboardEntry(
            metric="profit", period="all", user=make_user(f"more{i}"), rank=50 + i, value=0, markets=1, built_at=now
        )
        for i in range(10)
    )
    assert count_queries(client, "/api/v1/leaderboard/?metric=profit&limit=200") == few


def test_the_user_api_returns_the_track_record(scored):
    first, _second = scored
    bob = first.traders["bob"]
    response = APIClient().get(f"/api/v1/users/{bob.username}/")
    assert response.status_code == 200
    data = response.json()
    assert data["username"] == bob.username
    score = MarketScore.objects.get(user=bob)
    assert data["track_record"]["markets"] == 1
    assert Decimal(data["track_record"]["profit"]) == score.profit
    assert data["markets"][0]["market"] == first.market.slug
    assert data["markets"][0]["resolution"] == "outcome"
    assert data["markets"][0]["outcome"] == "YES"
    assert data["markets"][0]["brier"] == pytest.approx(score.brier)
    assert {(r["metric"], r["period"]) for r in data["ranks"]} == {
        (m, p) for m in ("profit", "baseline", "peer", "brier") for p in ("all", "30d")
    }
    assert sum(bucket["count"] for bucket in data["calibration"]) > 0
    assert APIClient().get("/api/v1/users/nobody-here/").status_code == 404


def test_the_market_scores_api(scored, traded_market):
    first, _ = scored
    response = APIClient().get(f"/api/v1/markets/{first.market.slug}/scores/")
    assert response.status_code == 200
    data = response.json()
    assert data["status"] == "resolved"
    assert data["resolution"] == "outcome"
    assert data["payouts"] == ["1", "0"]
    stored = {row.user.username: row for row in MarketScore.objects.filter(market=first.market).select_related("user")}
    assert {row["username"] for row in data["scores"]} == set(stored)
    for row in data["scores"]:
        assert Decimal(row["profit"]) == stored[row["username"]].profit
        assert row["peer"] == pytest.approx(stored[row["username"]].peer)
    profits = [Decimal(row["profit"]) for row in data["scores"]]
    assert profits == sorted(profits, reverse=True)

    unresolved = traded_market("unresolved", opens_at=timezone.now() - DAY)
    response = APIClient().get(f"/api/v1/markets/{unresolved.market.slug}/scores/")
    assert response.json()["scores"] == []
    assert response.json()["resolution"] is None
    assert APIClient().get("/api/v1/markets/no-such-market/scores/").status_code == 404
