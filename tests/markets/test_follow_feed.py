"""Following markets (markets/{slug}/follow/) and the feed of followed users (me/feed/, and the home page)."""

import pytest
from rest_framework.test import APIClient

from accounts.services import user_follow
from markets.models import MarketFollow
from markets.services.comments import comment_create, comment_hide
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def test_follow_and_unfollow_a_market(make_market, make_user):
    make_market("rutte")
    ana = make_user("ana")
    api = client_for(ana)
    assert api.post("/api/v1/markets/rutte/follow/").json() == {"market": "rutte", "following": True}
    assert api.delete("/api/v1/markets/rutte/follow/").json() == {"market": "rutte", "following": False}
    assert MarketFollow.objects.get().following is False
    assert api.post("/api/v1/markets/nope/follow/").status_code == 404
    assert client_for().post("/api/v1/markets/rutte/follow/").status_code in (401, 403)


def test_unfollowing_a_traded_market_sticks(make_market, make_user):
    market = make_market("rutte")
    ana = make_user("ana")
    buy(ana, market, "YES", "5")
    assert client_for(ana).delete("/api/v1/markets/rutte/follow/").json()["following"] is False
    buy(ana, market, "YES", "5")
    assert client_for(ana).post("/api/v1/markets/rutte/follow/").json()["following"] is True


def test_the_feed_shows_followed_users_trades_and_comments_newest_first(make_market, make_user):
    market = make_market("rutte")
    ana, bo, cy = make_user("ana"), make_user("bo"), make_user("cy")
    user_follow(follower=ana, followed=bo)
    buy(bo, market, "YES", "5")
    buy(cy, market, "YES", "5")  # not followed
    comment = comment_create(market=market, author=bo, body="I bought")
    hidden = comment_create(market=market, author=bo, body="spam")
    comment_hide(comment=hidden, staff=make_user("staffer", is_staff=True))
    buy(bo, market, "NO", "2")

    body = client_for(ana).get("/api/v1/me/feed/").json()
    assert [item["kind"] for item in body["results"]] == ["trade", "comment", "trade"]
    assert {item["username"] for item in body["results"]} == {"bo"}
    assert body["results"][1]["comment"]["id"] == comment.pk
    assert body["results"][0]["trade"]["outcome"] == "NO"
    assert body["next"] is None

    first = client_for(ana).get("/api/v1/me/feed/", {"page_size": 2}).json()
    assert len(first["results"]) == 2
    assert first["next"]
    rest = client_for(ana).get("/api/v1/me/feed/", {"page_size": 2, "cursor": first["next"]}).json()
    assert [item["kind"] for item in rest["results"]] == ["trade"]
    assert rest["next"] is None
    assert client_for().get("/api/v1/me/feed/").status_code in (401, 403)


def test_the_home_page_shows_the_feed_when_signed_in(client, make_market, make_user):
    market = make_market("rutte", question="Will Rutte lead NATO?")
    ana, bo = make_user("ana"), make_user("bo")
    user_follow(follower=ana, followed=bo)
    comment_create(market=market, author=bo, body="hello")
    assert "From people you follow" not in client.get("/").content.decode()
    client.force_login(ana)
    page = client.get("/").content.decode()
    assert "From people you follow" in page
    assert "commented on" in page
