"""The discussion on the market page: posting and replying by form, errors in place, edit, delete, report, and
the staff's moderation queue; the profile lists comments and followers; no typed text is ever unsanitized."""

import pytest

from accounts.services import user_follow
from markets.models import Comment, CommentReport
from markets.services.comments import comment_create
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db


@pytest.fixture
def market(make_market):
    return make_market("rutte", question="Will Rutte lead NATO?")


def test_the_market_page_shows_comments_with_positions(client, market, make_user):
    ana = make_user("ana")
    buy(ana, market, "YES", "50")
    comment_create(market=market, author=ana, body="**Confident** <script>alert(1)</script>", attach_forecast=True)
    page = client.get("/markets/rutte/").content.decode()
    assert "Discussion" in page
    assert "<strong>Confident</strong>" in page
    assert "<script>alert(1)</script>" not in page
    assert "holds " in page
    assert " Yes" in page
    assert "Forecast: Yes 6" in page
    assert "Log in</a> to join the discussion" in page


def test_posting_and_replying_by_form(client, market, make_user):
    ana, bo = make_user("ana"), make_user("bo")
    client.force_login(ana)
    response = client.post("/markets/rutte/comments/", {"body": "First"})
    top = Comment.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/markets/rutte/#comment-{top.pk}"
    client.force_login(bo)
    client.post("/markets/rutte/comments/", {"body": "Reply @ana", "parent": str(top.pk)})
    reply = Comment.objects.exclude(pk=top.pk).get()
    assert reply.parent == top
    assert '<a href="/users/ana/"' in client.get("/markets/rutte/").content.decode()


def test_a_refused_comment_is_shown_with_its_error_and_the_text_kept(client, market, make_user):
    client.force_login(make_user("ana"))
    response = client.post("/markets/rutte/comments/", {"body": "   "})
    assert response.status_code == 422
    assert "the comment is empty" in response.content.decode()
    response = client.post("/markets/rutte/comments/", {"body": "My view", "attach_forecast": "on"})
    assert response.status_code == 422
    assert "trade it first" in response.content.decode()
    assert "My view</textarea>" in response.content.decode()
    assert not Comment.objects.exists()


def test_the_website_shares_the_posting_limit(client, market, make_user, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "comment": "1/min"},
    }
    client.force_login(make_user("ana"))
    assert client.post("/markets/rutte/comments/", {"body": "one"}).status_code == 302
    refused = client.post("/markets/rutte/comments/", {"body": "two"})
    assert refused.status_code == 422
    assert "You are commenting fast" in refused.content.decode()
    assert Comment.objects.count() == 1


def test_edit_and_delete_are_the_authors_alone(client, market, make_user):
    ana, bo = make_user("ana"), make_user("bo")
    comment = comment_create(market=market, author=ana, body="mine")
    client.force_login(bo)
    assert client.get(f"/comments/{comment.pk}/edit/").status_code == 404
    assert client.post(f"/comments/{comment.pk}/edit/", {"body": "stolen"}).status_code == 404
    assert client.post(f"/comments/{comment.pk}/delete/").status_code == 404
    client.force_login(ana)
    assert client.post(f"/comments/{comment.pk}/edit/", {"body": "better"}).status_code == 302
    comment.refresh_from_db()
    assert comment.body == "better"
    assert comment.edited_at is not None
    assert "edited" in client.get("/markets/rutte/").content.decode()
    assert client.post(f"/comments/{comment.pk}/delete/").status_code == 302
    assert "better" not in client.get("/markets/rutte/").content.decode()


def test_reports_reach_the_staff_queue_where_staff_hide_or_dismiss(client, market, make_user):
    ana, bo = make_user("ana"), make_user("bo")
    staff = make_user("staffer", is_staff=True)
    rude = comment_create(market=market, author=ana, body="rude words")
    fine = comment_create(market=market, author=ana, body="fine words")
    client.force_login(bo)
    client.post(f"/comments/{rude.pk}/report/", {"reason": "Rude"})
    client.post(f"/comments/{fine.pk}/report/", {"reason": ""})
    assert client.get("/staff/comments/").status_code == 403
    assert client.post(f"/comments/{rude.pk}/hide/").status_code == 403
    client.force_login(staff)
    queue = client.get("/staff/comments/").content.decode()
    assert "rude words" in queue
    assert "fine words" in queue
    assert "Reason: Rude" in queue
    client.post(f"/comments/{rude.pk}/hide/", {"next": "queue"})
    client.post(f"/staff/reports/{CommentReport.objects.get(comment=fine).pk}/dismiss/")
    assert "No open reports." in client.get("/staff/comments/").content.decode()
    page = client.get("/markets/rutte/").content.decode()
    assert "rude words" not in page
    assert "fine words" in page


def test_the_profile_shows_comments_and_followers_and_a_follow_button(client, market, make_user):
    ana, bo = make_user("ana"), make_user("bo")
    comment_create(market=market, author=ana, body="*profile* comment")
    user_follow(follower=bo, followed=ana)
    page = client.get("/users/ana/").content.decode()
    assert "<em>profile</em> comment" in page
    assert "1 follower " in page
    assert '/users/bo/">bo</a>' in page
    client.force_login(bo)
    assert "Following" in client.get("/users/ana/").content.decode()
    client.post("/accounts/follow/ana/", {"following": "no"})
    assert "0 followers" in client.get("/users/ana/").content.decode()


def test_following_a_market_from_its_page(client, market, make_user):
    client.force_login(make_user("ana"))
    assert ">Follow<" in client.get("/markets/rutte/").content.decode()
    client.post("/markets/rutte/follow/", {"following": "yes"})
    assert ">Following<" in client.get("/markets/rutte/").content.decode()
