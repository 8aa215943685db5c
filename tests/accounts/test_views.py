"""Account pages: sign-up (with the grant), log-in, log-out, password change, API keys."""

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Account, ApiKey, User
from accounts.services import api_key_authenticate

pytestmark = pytest.mark.django_db


def key_user(raw_key):
    """The user a raw key authenticates, or None."""
    authenticated = api_key_authenticate(raw_key=raw_key)
    return authenticated.user if authenticated else None


def test_signup_creates_a_user_with_the_grant_and_logs_in(client):
    assert client.get("/accounts/signup/").status_code == 200
    response = client.post(
        "/accounts/signup/",
        {
            "username": "newbie",
            "email": "n@example.com",
            "password1": "a-long-password-1",
            "password2": "a-long-password-1",
        },
    )
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert Account.objects.get(user=user).balance == Decimal("1000")
    assert "newbie" in client.get("/").content.decode()


def test_signup_redirects_to_a_safe_next_only(client):
    data = {"username": "n1", "password1": "a-long-password-1", "password2": "a-long-password-1"}
    response = client.post("/accounts/signup/?next=/markets/rutte/", data)
    assert response["Location"] == "/markets/rutte/"
    other = Client()
    data["username"] = "n2"
    response = other.post("/accounts/signup/?next=https://evil.example/", data)
    assert response["Location"] == "/"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"username": "taken", "password1": "a-long-password-1", "password2": "a-long-password-1"},
            "That username is taken.",
        ),
        (
            {"username": "TAKEN", "password1": "a-long-password-1", "password2": "a-long-password-1"},
            "That username is taken.",
        ),
        (
            {"username": "x", "password1": "a-long-password-1", "password2": "different-password"},
            "The two passwords differ.",
        ),
        ({"username": "x", "password1": "short", "password2": "short"}, "too short"),
        ({"username": "x", "password1": "12345678901", "password2": "12345678901"}, "entirely numeric"),
        (
            {"username": "bad name!", "password1": "a-long-password-1", "password2": "a-long-password-1"},
            "Enter a valid username",
        ),
        ({"username": "", "password1": "", "password2": ""}, "This field is required."),
    ],
)
def test_signup_errors(client, make_user, data, message):
    make_user("taken")
    response = client.post("/accounts/signup/", data)
    assert response.status_code == 422
    assert message in response.content.decode()
    assert User.objects.count() == 1


def test_login_and_logout(client, make_user):
    make_user("alice", password="a-long-password")
    assert client.get("/accounts/login/").status_code == 200
    bad = client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert bad.status_code == 200
    assert "correct username and password" in bad.content.decode()
    response = client.post("/accounts/login/", {"username": "alice", "password": "a-long-password"})
    assert response.status_code == 302
    assert "alice" in client.get("/").content.decode()
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/portfolio/").status_code == 302


def test_password_change(client, make_user):
    user = make_user("alice", password="a-long-password")
    client.force_login(user)
    assert client.get("/accounts/password/change/").status_code == 200
    wrong = client.post(
        "/accounts/password/change/",
        {"old_password": "nope", "new_password1": "another-long-pass", "new_password2": "another-long-pass"},
    )
    assert "Your old password was entered incorrectly" in wrong.content.decode()
    response = client.post(
        "/accounts/password/change/",
        {"old_password": "a-long-password", "new_password1": "another-long-pass", "new_password2": "another-long-pass"},
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password("another-long-pass")


def test_api_key_is_shown_once_and_stored_hashed(client, make_user):
    user = make_user()
    client.force_login(user)
    response = client.post("/accounts/api-keys/", {"name": "my bot", "scopes": ["read", "trade"]})
    assert response.status_code == 200
    raw_key = response.context["raw_key"]
    assert raw_key in response.content.decode()
    key = ApiKey.objects.get(user=user)
    assert raw_key not in key.hashed_key
    assert key_user(raw_key) == user
    page = client.get("/accounts/api-keys/").content.decode()
    assert raw_key not in page
    assert key.prefix in page


def test_api_key_needs_a_name(client, make_user):
    client.force_login(make_user())
    response = client.post("/accounts/api-keys/", {"name": "   "})
    assert response.status_code == 422
    assert not ApiKey.objects.exists()


def test_api_key_revoke(client, make_user):
    user = make_user()
    client.force_login(user)
    raw_key = client.post("/accounts/api-keys/", {"name": "bot", "scopes": ["read"]}).context["raw_key"]
    key = ApiKey.objects.get()
    response = client.post(f"/accounts/api-keys/{key.pk}/revoke/")
    assert response.status_code == 302
    assert api_key_authenticate(raw_key=raw_key) is None
    assert "Revoked" in client.get("/accounts/api-keys/").content.decode()


def test_cannot_revoke_someone_elses_key(client, make_user):
    owner = make_user()
    client.force_login(owner)
    client.post("/accounts/api-keys/", {"name": "bot", "scopes": ["read"]})
    key = ApiKey.objects.get()
    client.force_login(make_user())
    assert client.post(f"/accounts/api-keys/{key.pk}/revoke/").status_code == 404
    assert client.get(f"/accounts/api-keys/{key.pk}/revoke/").status_code == 405
    key.refresh_from_db()
    assert key.revoked_at is None


def test_api_keys_page_requires_login(client):
    assert client.get("/accounts/api-keys/").status_code == 302
