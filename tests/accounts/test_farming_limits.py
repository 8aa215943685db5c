"""Issue 8, findings 3 and 8: sign-ups per client address, active API keys per account, and a password
change that revokes the account's API keys (and says so)."""

import pytest
from rest_framework.test import APIClient

from accounts.models import ApiKey, User
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db


def sign_up(client, username, **extra):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": "a-long-password-1", "password2": "a-long-password-1"},
        **extra,
    )


def test_sign_ups_are_limited_per_address(client, settings):
    """Finding 3: 15 sign-ups from one address in 7 s, each with the grant. Now the limit holds."""
    settings.FORECASTLE_SIGNUP_RATE = "3/hour"
    statuses = []
    for number in range(5):
        client.logout()
        statuses.append(sign_up(client, f"farm{number}").status_code)
    assert statuses == [302, 302, 302, 429, 429]
    assert User.objects.filter(username__startswith="farm").count() == 3
    client.logout()
    refused = sign_up(client, "farm9")
    assert "Too many sign-ups from your address, try again in" in refused.content.decode()
    # A header the client writes is not an address; another socket address is.
    assert sign_up(client, "farm10", HTTP_X_FORWARDED_FOR="192.0.2.1").status_code == 429
    assert sign_up(client, "farm11", REMOTE_ADDR="192.0.2.1").status_code == 302


def test_api_keys_per_account_are_capped(make_user, settings):
    settings.FORECASTLE_API_KEYS_PER_ACCOUNT = 3
    user = make_user("bot", password="a-long-password")
    client = APIClient()
    statuses = [
        client.post(
            "/api/v1/auth/token/", {"username": "bot", "password": "a-long-password"}, format="json"
        ).status_code
        for _ in range(4)
    ]
    assert statuses == [201, 201, 201, 422]
    refused = client.post("/api/v1/auth/token/", {"username": "bot", "password": "a-long-password"}, format="json")
    assert refused.json()["error"]["code"] == "limit_reached"
    assert ApiKey.objects.filter(user=user).count() == 3


def test_the_key_page_refuses_past_the_cap_and_a_revoked_key_frees_a_place(client, make_user, settings):
    settings.FORECASTLE_API_KEYS_PER_ACCOUNT = 2
    user = make_user("bot")
    client.force_login(user)
    assert client.post("/accounts/api-keys/", {"name": "one", "scopes": ["read"]}).status_code == 200
    assert client.post("/accounts/api-keys/", {"name": "two", "scopes": ["read"]}).status_code == 200
    refused = client.post("/accounts/api-keys/", {"name": "three", "scopes": ["read"]})
    assert refused.status_code == 422
    assert "at most 2 active API keys" in refused.content.decode()
    first = ApiKey.objects.get(user=user, name="one")
    client.post(f"/accounts/api-keys/{first.pk}/revoke/")
    assert client.post("/accounts/api-keys/", {"name": "three", "scopes": ["read"]}).status_code == 200


def test_a_password_change_revokes_the_api_keys_and_the_page_says_so(client, make_user):
    """Finding 8: API keys kept working after the password changed."""
    user = make_user("alice", password="a-long-password")
    _first, first_raw = api_key_create(user=user, name="laptop")
    _second, second_raw = api_key_create(user=user, name="server")
    other = make_user("bob")
    _kept, kept_raw = api_key_create(user=other, name="bob's")
    client.force_login(user)
    done = client.post(
        "/accounts/password/change/",
        {"old_password": "a-long-password", "new_password1": "another-long-pass", "new_password2": "another-long-pass"},
        follow=True,
    )
    page = done.content.decode()
    assert "2 API keys revoked." in page
    assert "Every API key of your account has been revoked" in page
    for raw, status in [(first_raw, 401), (second_raw, 401), (kept_raw, 200)]:
        api = APIClient()
        api.credentials(HTTP_AUTHORIZATION=f"Token {raw}")
        assert api.get("/api/v1/me/").status_code == status


def test_a_password_set_by_staff_in_the_admin_revokes_the_keys(client, make_user):
    user = make_user("alice")
    api_key_create(user=user, name="laptop")
    client.force_login(make_user("root", is_staff=True))
    response = client.post(
        f"/admin/accounts/user/{user.pk}/password/",
        {"password1": "a-staff-set-password", "password2": "a-staff-set-password", "usable_password": "true"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert not ApiKey.objects.filter(user=user, revoked_at__isnull=True).exists()
