"""The discussion API: comments with positions, replies, ordering and pages, edits, deletion, reports, and who
may do what (nobody edits or deletes another's comment; hidden and deleted comments stay out of the API)."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Notification
from markets.models import Comment, CommentReport
from markets.services import trade_execute
from markets.services.comments import comment_create, comment_hide
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

COMMENTS = "/api/v1/markets/rutte-nato/comments/"


@pytest.fixture
def market(make_market):
    return make_market("rutte-nato", question="Will Mark Rutte be appointed NATO Secretary-General?")


@pytest.fixture
def ana(make_user):
    return make_user("ana")


@pytest.fixture
def bo(make_user):
    return make_user("bo")


class JsonClient(APIClient):
    """Writes send JSON, as the API expects."""

    def post(self, path, data=None, format="json", **extra):  # type: ignore[override]
        return super().post(path, data, format=format, **extra)

    def patch(self, path, data=None, format="json", **extra):  # type: ignore[override]
        return super().patch(path, data, format=format, **extra)


def client_for(user=None):
    client = JsonClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def assert_error(response, status, code, field=None):
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if field is not None:
        assert field in error["fields"], error
    return error


def test_a_comment_carries_the_authors_position_and_forecast(market, ana):
    trade_execute(user=ana, market=market, request=trade_request("YES", "buy", shares="120"))
    response = client_for(ana).post(
        COMMENTS, {"body": "Rutte has the votes. *Easy* [source](https://nato.int)", "attach_forecast": True}
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["author"] == "ana"
    assert body["position"] == [{"outcome": "YES", "label": "Yes", "shares": "120.000000"}]
    assert [each["outcome"] for each in body["forecast"]] == ["YES", "NO"]
    assert body["forecast"][0]["label"] == "Yes"
    assert body["forecast"][0]["probability"] > 0.5
    assert '<a href="https://nato.int" rel="nofollow ugc">source</a>' in body["body_html"]
    assert "<em>Easy</em>" in body["body_html"]
    assert body["edited_at"] is None
    comment = Comment.objects.get()
    assert comment.position[0]["shares"] == "120.000000"


def test_the_position_is_the_one_at_writing_time(market, ana):
    trade_execute(user=ana, market=market, request=trade_request("YES", "buy", shares="10"))
    client_for(ana).post(COMMENTS, {"body": "first"})
    trade_execute(user=ana, market=market, request=trade_request("YES", "buy", shares="30"))
    listed = client_for().get(COMMENTS).json()["results"]
    assert listed[0]["position"][0]["shares"] == "10.000000"


def test_attaching_a_forecast_without_a_trade_is_refused(market, ana):
    assert_error(
        client_for(ana).post(COMMENTS, {"body": "hm", "attach_forecast": True}), 422, "no_forecast", "attach_forecast"
    )
    assert not Comment.objects.exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ("x" * 10_001, "10,000"),
        ("bad\x00byte", "Null characters"),
    ],
)
def test_empty_oversize_and_nul_comments_get_a_clear_error(market, ana, body, message):
    error = assert_error(client_for(ana).post(COMMENTS, {"body": body}, format="json"), 400, "invalid", "body")
    assert message in " ".join(error["fields"]["body"])
    assert not Comment.objects.exists()


def test_ten_thousand_characters_is_allowed(market, ana):
    assert client_for(ana).post(COMMENTS, {"body": "x" * 10_000}).status_code == 201


def test_raw_html_is_escaped_and_scripts_never_survive(market, ana):
    body = "<script>alert(1)</script> <img src=x onerror=alert(1)> [x](javascript:alert(1))"
    html = client_for(ana).post(COMMENTS, {"body": body}).json()["body_html"]
    assert "<script" not in html
    assert "<img" not in html
    assert 'href="javascript' not in html
    assert "&lt;script&gt;" in html


def test_anonymous_users_read_but_do_not_post(market, ana):
    comment_create(market=market, author=ana, body="hello")
    assert client_for().get(COMMENTS).status_code == 200
    assert client_for().post(COMMENTS, {"body": "hi"}).status_code in (401, 403)


def test_replies_are_one_level_and_notify_the_parent_author(market, ana, bo):
    top = client_for(ana).post(COMMENTS, {"body": "top"}).json()
    reply = client_for(bo).post(COMMENTS, {"body": "reply", "parent": top["id"]}).json()
    # A reply to a reply joins the same thread.
    nested = client_for(ana).post(COMMENTS, {"body": "again", "parent": reply["id"]}).json()
    assert reply["parent"] == top["id"]
    assert nested["parent"] == top["id"]
    listed = client_for().get(COMMENTS).json()["results"]
    assert [c["id"] for c in listed] == [top["id"]]
    assert [r["id"] for r in listed[0]["replies"]] == [reply["id"], nested["id"]]
    assert listed[0]["reply_count"] == 2
    notification = Notification.objects.get(recipient=ana)
    assert notification.kind == Notification.Kind.COMMENT_REPLY
    assert "bo replied" in notification.text
    assert notification.link.endswith(f"#comment-{reply['id']}")
    # Ana's own reply in her own thread tells nobody.
    assert not Notification.objects.filter(recipient=ana).exclude(pk=notification.pk).exists()


def test_a_reply_to_another_markets_comment_is_refused(market, make_market, ana):
    other = make_market("other")
    foreign = comment_create(market=other, author=ana, body="elsewhere")
    assert_error(client_for(ana).post(COMMENTS, {"body": "x", "parent": foreign.pk}), 400, "invalid", "parent")


def test_mentions_link_to_the_profile_and_notify_once(market, ana, bo, make_user):
    make_user("cy")
    response = client_for(bo).post(COMMENTS, {"body": "@ana and @cy, and @nobody, look"})
    html = response.json()["body_html"]
    assert '<a href="/users/ana/" class="mention" rel="nofollow ugc">@ana</a>' in html
    assert "@nobody" in html
    assert "/users/nobody/" not in html
    assert set(Notification.objects.values_list("recipient__username", "kind")) == {
        ("ana", "mention"),
        ("cy", "mention"),
    }
    # An edit that adds nobody new tells nobody again.
    comment_id = response.json()["id"]
    client_for(bo).patch(f"/api/v1/comments/{comment_id}/", {"body": "@ana and @cy, look again"})
    assert Notification.objects.count() == 2


def test_newest_and_top_orderings_and_cursor_pages(market, ana, bo):
    first = comment_create(market=market, author=ana, body="first")
    second = comment_create(market=market, author=ana, body="second")
    third = comment_create(market=market, author=ana, body="third")
    comment_create(market=market, author=bo, body="reply", parent_id=first.pk)
    newest = client_for().get(COMMENTS, {"page_size": 2}).json()
    assert [c["id"] for c in newest["results"]] == [third.pk, second.pk]
    rest = client_for().get(newest["next"]).json()
    assert [c["id"] for c in rest["results"]] == [first.pk]
    assert rest["next"] is None
    top = client_for().get(COMMENTS, {"ordering": "top"}).json()
    assert top["results"][0]["id"] == first.pk
    assert_error(client_for().get(COMMENTS, {"ordering": "loudest"}), 400, "invalid", "ordering")


def test_a_draft_market_has_no_comments_endpoint(make_market, ana):
    make_market("secret", open_now=False)
    assert_error(client_for(ana).get("/api/v1/markets/secret/comments/"), 404, "not_found")
    assert_error(client_for(ana).post("/api/v1/markets/secret/comments/", {"body": "x"}), 404, "not_found")


# Edit and delete


def test_the_author_edits_within_the_window_and_it_shows_as_edited(market, ana):
    comment = comment_create(market=market, author=ana, body="typo")
    response = client_for(ana).patch(f"/api/v1/comments/{comment.pk}/", {"body": "**fixed**"})
    assert response.status_code == 200, response.content
    assert response.json()["edited_at"] is not None
    assert "<strong>fixed</strong>" in response.json()["body_html"]
    comment.refresh_from_db()
    assert comment.body == "**fixed**"
    assert comment.edited_at is not None


def test_an_edit_after_the_window_is_refused(market, ana, settings):
    comment = comment_create(market=market, author=ana, body="old", now=timezone.now() - timedelta(minutes=16))
    settings.FORECASTLE_COMMENT_EDIT_MINUTES = 15
    assert_error(client_for(ana).patch(f"/api/v1/comments/{comment.pk}/", {"body": "new"}), 422, "edit_window_closed")
    comment.refresh_from_db()
    assert comment.body == "old"


def test_nobody_edits_or_deletes_another_users_comment(market, ana, bo, make_user):
    comment = comment_create(market=market, author=ana, body="mine")
    staff = make_user("staffer", is_staff=True)
    for intruder in (bo, staff):
        assert_error(
            client_for(intruder).patch(f"/api/v1/comments/{comment.pk}/", {"body": "yours"}), 403, "not_author"
        )
        assert_error(client_for(intruder).delete(f"/api/v1/comments/{comment.pk}/"), 403, "not_author")
    assert client_for().patch(f"/api/v1/comments/{comment.pk}/", {"body": "x"}).status_code in (401, 403)
    assert client_for().delete(f"/api/v1/comments/{comment.pk}/").status_code in (401, 403)
    comment.refresh_from_db()
    assert comment.body == "mine"
    assert comment.deleted_at is None


def test_the_author_deletes_and_the_comment_leaves_the_api(market, ana, bo):
    top = comment_create(market=market, author=ana, body="top")
    reply = comment_create(market=market, author=bo, body="reply", parent_id=top.pk)
    assert client_for(bo).delete(f"/api/v1/comments/{reply.pk}/").status_code == 204
    listed = client_for().get(COMMENTS).json()["results"]
    assert listed[0]["replies"] == []
    assert listed[0]["reply_count"] == 0
    # Gone for its author too: no second delete, no edit.
    assert_error(client_for(bo).delete(f"/api/v1/comments/{reply.pk}/"), 404, "not_found")
    assert_error(client_for(bo).patch(f"/api/v1/comments/{reply.pk}/", {"body": "x"}), 404, "not_found")


def test_hidden_comments_stay_hidden_from_the_api(market, ana, bo, make_user):
    staff = make_user("staffer", is_staff=True)
    top = comment_create(market=market, author=ana, body="spam")
    reply = comment_create(market=market, author=bo, body="reply to spam", parent_id=top.pk)
    visible = comment_create(market=market, author=bo, body="fine")
    comment_hide(comment=top, staff=staff)
    for reader in (None, ana, bo, staff):
        listed = client_for(reader).get(COMMENTS).json()["results"]
        assert [c["id"] for c in listed] == [visible.pk]
    for path in (f"/api/v1/comments/{top.pk}/", f"/api/v1/comments/{reply.pk}/"):
        assert_error(client_for(ana).patch(path, {"body": "back"}), 404, "not_found")
        assert_error(client_for(bo).post(path + "reports/", {}), 404, "not_found")
    # Nor does the feed or a reply reveal it.
    assert_error(client_for(bo).post(COMMENTS, {"body": "x", "parent": top.pk}), 400, "invalid", "parent")


def test_staff_hide_a_comment_through_the_api_and_it_is_recorded(market, ana, bo, make_user):
    staff = make_user("moderator", is_staff=True)
    comment = comment_create(market=market, author=ana, body="spam")
    reply = comment_create(market=market, author=bo, body="answering spam", parent_id=comment.pk)
    client_for(bo).post(f"/api/v1/comments/{comment.pk}/reports/", {"reason": "Spam."})
    path = f"/api/v1/comments/{comment.pk}/hide/"
    response = client_for(staff).post(path)
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["id"], body["market"], body["hidden_by"]) == (comment.pk, market.slug, "moderator")
    comment.refresh_from_db()
    assert comment.hidden_by == staff
    assert comment.hidden_at is not None
    assert body["hidden_at"].startswith(comment.hidden_at.isoformat()[:19])
    report = CommentReport.objects.get(comment=comment)
    assert (report.state, report.handled_by) == ("hidden", staff)
    assert [c["id"] for c in client_for(ana).get(COMMENTS).json()["results"]] == []
    assert_error(client_for(ana).patch(f"/api/v1/comments/{reply.pk}/", {"body": "back"}), 404, "not_found")
    # Again: the same answer, the first hiding stands.
    again = client_for(make_user("other-moderator", is_staff=True)).post(path)
    assert again.status_code == 200
    assert again.json()["hidden_by"] == "moderator"
    assert again.json()["hidden_at"] == body["hidden_at"]


def test_only_staff_hide_comments(market, ana, bo):
    comment = comment_create(market=market, author=ana, body="mine")
    path = f"/api/v1/comments/{comment.pk}/hide/"
    assert client_for().post(path).status_code in (401, 403)
    for user in (ana, bo):
        assert_error(client_for(user).post(path), 403, "permission_denied")
    assert Comment.objects.get(pk=comment.pk).hidden_at is None
    assert_error(client_for(bo).post(f"/api/v1/comments/{comment.pk + 999}/hide/"), 403, "permission_denied")


def test_hiding_an_unknown_or_deleted_comment_is_a_404(market, ana, make_user):
    staff = client_for(make_user("moderator", is_staff=True))
    comment = comment_create(market=market, author=ana, body="gone")
    client_for(ana).delete(f"/api/v1/comments/{comment.pk}/")
    assert_error(staff.post(f"/api/v1/comments/{comment.pk}/hide/"), 404, "not_found")
    assert_error(staff.post(f"/api/v1/comments/{comment.pk + 999}/hide/"), 404, "not_found")


# Reports


def test_a_report_lands_in_the_queue_once(market, ana, bo):
    comment = comment_create(market=market, author=ana, body="rude")
    path = f"/api/v1/comments/{comment.pk}/reports/"
    first = client_for(bo).post(path, {"reason": "Rude."})
    assert first.status_code == 201
    assert first.json() == {"comment": comment.pk, "reported": True}
    again = client_for(bo).post(path, {"reason": "Still rude."})
    assert again.status_code == 200
    assert again.json()["reported"] is False
    report = CommentReport.objects.get()
    assert (report.reporter, report.reason, report.state) == (bo, "Rude.", "open")
    assert_error(client_for(bo).post(path, {"reason": "x" * 501}), 400, "invalid", "reason")
    assert client_for().post(path, {}).status_code in (401, 403)


def test_hiding_closes_the_reports(market, ana, bo, make_user):
    comment = comment_create(market=market, author=ana, body="rude")
    client_for(bo).post(f"/api/v1/comments/{comment.pk}/reports/", {})
    comment_hide(comment=comment, staff=make_user("staffer", is_staff=True))
    assert CommentReport.objects.get().state == CommentReport.Outcome.HIDDEN


# Rate limit


def test_posting_is_rate_limited_per_account(market, ana, bo, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "comment": "2/min"},
    }
    api = client_for(ana)
    assert [api.post(COMMENTS, {"body": f"n{i}"}).status_code for i in range(2)] == [201, 201]
    refused = api.post(COMMENTS, {"body": "third"})
    assert_error(refused, 429, "throttled")
    assert int(refused.headers["Retry-After"]) >= 1
    # Another account has its own allowance, and reading is not posting.
    assert client_for(bo).post(COMMENTS, {"body": "mine"}).status_code == 201
    assert api.get(COMMENTS).status_code == 200
    assert Comment.objects.filter(author=ana).count() == 2


def test_a_reply_while_the_broker_is_down_still_posts(market, ana, bo, monkeypatch, django_capture_on_commit_callbacks):
    from kombu.exceptions import OperationalError

    from accounts import tasks

    def broker_down():
        raise OperationalError("broker unreachable")

    monkeypatch.setattr(tasks.notifications_email_send, "delay", broker_down)
    top = comment_create(market=market, author=ana, body="top")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = client_for(bo).post(COMMENTS, {"body": "reply", "parent": top.pk})
    assert response.status_code == 201
    assert len(callbacks) == 1
    assert Notification.objects.filter(recipient=ana, kind="comment_reply").exists()
