"""Your notifications (me/notifications/, me/notifications/read/), following users (users/{username}/follow/),
and the bell, the notifications page and the e-mail preferences on the website."""

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Notification, NotificationPreference, UserFollow
from accounts.notifications import notification_send

pytestmark = pytest.mark.django_db


def client_for(user=None):
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def tell(user, n, **extra):
    notification_send(
        kind="mention", event_key=f"test:{n}", recipient_ids=[user.pk], text=f"news {n}", link="/markets/x/", **extra
    )
    return Notification.objects.get(recipient=user, event_key=f"test:{n}")


def test_a_user_reads_their_own_notifications_newest_first(make_user):
    ana, bo = make_user("ana"), make_user("bo")
    first, second = tell(ana, 1), tell(ana, 2)
    tell(bo, 3)
    body = client_for(ana).get("/api/v1/me/notifications/").json()
    assert body["unread_count"] == 2
    assert [n["id"] for n in body["results"]] == [second.pk, first.pk]
    assert body["results"][0] == {
        "id": second.pk,
        "kind": "mention",
        "text": "news 2",
        "link": "/markets/x/",
        "payload": {"text": "news 2"},
        "created_at": body["results"][0]["created_at"],
        "read_at": None,
    }
    assert client_for().get("/api/v1/me/notifications/").status_code in (401, 403)


def test_the_same_event_is_never_told_twice(make_user):
    ana = make_user("ana")
    tell(ana, 1)
    assert notification_send(kind="mention", event_key="test:1", recipient_ids=[ana.pk], text="again", link="") == 0
    assert Notification.objects.filter(recipient=ana).count() == 1


def test_mark_one_then_all_read_and_never_someone_elses(make_user):
    ana, bo = make_user("ana"), make_user("bo")
    one, _two = tell(ana, 1), tell(ana, 2)
    theirs = tell(bo, 3)
    api = client_for(ana)
    response = api.post("/api/v1/me/notifications/read/", {"ids": [one.pk, theirs.pk]}, format="json")
    assert response.json() == {"marked": 1, "unread_count": 1}
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert api.get("/api/v1/me/notifications/", {"unread": "true"}).json()["results"][0]["text"] == "news 2"
    assert api.post("/api/v1/me/notifications/read/", {"all": True}, format="json").json() == {
        "marked": 1,
        "unread_count": 0,
    }
    error = api.post("/api/v1/me/notifications/read/", {}, format="json").json()["error"]
    assert error["code"] == "invalid"
    assert "ids" in error["fields"]


def test_following_and_unfollowing_a_user(make_user):
    ana, bo = make_user("ana"), make_user("bo")
    api = client_for(ana)
    assert api.post("/api/v1/users/bo/follow/").json() == {"username": "bo", "following": True}
    assert api.post("/api/v1/users/bo/follow/").status_code == 200
    assert UserFollow.objects.filter(follower=ana, followed=bo).count() == 1
    assert api.delete("/api/v1/users/bo/follow/").json() == {"username": "bo", "following": False}
    assert not UserFollow.objects.exists()
    assert api.post("/api/v1/users/ana/follow/").json()["error"]["fields"] == {
        "username": ["You cannot follow yourself."]
    }
    assert api.post("/api/v1/users/nobody/follow/").status_code == 404
    assert client_for().post("/api/v1/users/bo/follow/").status_code in (401, 403)


def test_the_bell_counts_unread_and_the_page_marks_read(client, make_user):
    ana = make_user("ana")
    client.force_login(ana)
    assert 'id="bell-count"' not in client.get("/leaderboard/").content.decode()
    first = tell(ana, 1)
    tell(ana, 2)
    page = client.get("/leaderboard/").content.decode()
    assert 'id="bell-count">2<' in page
    response = client.post("/accounts/notifications/", {"id": str(first.pk)})
    assert response.status_code == 302
    assert response["Location"] == "/markets/x/"
    assert 'id="bell-count">1<' in client.get("/accounts/notifications/").content.decode()
    client.post("/accounts/notifications/", {"all": "1"})
    assert Notification.objects.filter(recipient=ana, read_at__isnull=True).count() == 0


def test_email_preferences_are_saved_per_kind(client, make_user):
    ana = make_user("ana")
    client.force_login(ana)
    assert client.get("/accounts/notifications/settings/").status_code == 200
    client.post("/accounts/notifications/settings/", {"market_moved": "off", "mention": "digest", "comment_reply": "x"})
    assert dict(NotificationPreference.objects.filter(user=ana).values_list("kind", "delivery")) == {
        "market_moved": "off",
        "mention": "digest",
    }


def test_the_unread_count_is_one_query(make_user, django_assert_num_queries):
    from accounts.notifications import notification_unread_count

    ana = make_user("ana")
    tell(ana, 1)
    Notification.objects.update(read_at=timezone.now())
    tell(ana, 2)
    with django_assert_num_queries(1):
        assert notification_unread_count(user_id=ana.pk) == 1
