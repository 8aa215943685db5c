"""Issue 8, finding 1: password guessing is limited per account and per client address on the website
login, the admin login and the token endpoint; X-Forwarded-For does not change the address unless the
deployment declares its proxies; a password reset by e-mail is the way back from a lockout."""

import re

import pytest
from django.core import mail
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"
PASSWORD = "a-long-password"
LIMIT = 3


@pytest.fixture(autouse=True)
def login_policy(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = __import__("datetime").timedelta(minutes=20)


def website_login(client, username, password, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def admin_login(client, username, password, **extra):
    return client.post(
        "/admin/login/?next=/admin/", {"username": username, "password": password, "next": "/admin/"}, **extra
    )


def token_login(client, username, password, **extra):
    return APIClient().post(TOKEN, {"username": username, "password": password}, format="json", **extra)


LOGINS = [website_login, admin_login, token_login]


@pytest.mark.parametrize("login", LOGINS, ids=["website", "admin", "token"])
def test_after_the_limit_even_the_right_password_is_refused_with_the_wait(client, make_user, login):
    make_user("alice", password=PASSWORD, is_staff=True)
    for _ in range(LIMIT - 1):
        assert login(client, "alice", "wrong").status_code in (200, 401)
    locked = login(client, "alice", "wrong")
    assert locked.status_code == 429
    refused = login(client, "alice", PASSWORD)
    assert refused.status_code == 429
    assert "Too many attempts, try again in 20 minutes." in refused.content.decode()
    assert refused["Retry-After"] == "1200"
    if login is token_login:
        assert refused.json()["error"]["code"] == "too_many_attempts"
        assert not ApiKey.objects.exists()
    else:
        assert "_auth_user_id" not in client.session


@pytest.mark.parametrize("login", LOGINS, ids=["website", "admin", "token"])
def test_the_account_is_locked_whichever_address_guesses(client, make_user, login):
    make_user("alice", password=PASSWORD, is_staff=True)
    for number in range(LIMIT):
        login(client, "alice", "wrong", REMOTE_ADDR=f"10.0.0.{number + 1}")
    assert login(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.99").status_code == 429


@pytest.mark.parametrize("login", LOGINS, ids=["website", "admin", "token"])
def test_one_address_guessing_many_accounts_is_locked(client, make_user, login):
    make_user("victim", password=PASSWORD, is_staff=True)
    for number in range(LIMIT):
        login(client, f"someone{number}", "wrong", REMOTE_ADDR="10.0.0.7")
    assert login(client, "victim", PASSWORD, REMOTE_ADDR="10.0.0.7").status_code == 429
    # Another address is not held back by that one.
    assert login(client, "victim", PASSWORD, REMOTE_ADDR="10.0.0.8").status_code in (200, 201, 302)


@pytest.mark.parametrize("login", LOGINS, ids=["website", "admin", "token"])
def test_x_forwarded_for_does_not_change_the_address_without_declared_proxies(client, make_user, login):
    """Finding 1: a fresh X-Forwarded-For on every request used to be a fresh address for the limit."""
    make_user("victim", password=PASSWORD, is_staff=True)
    for number in range(LIMIT):
        login(client, f"someone{number}", "wrong", HTTP_X_FORWARDED_FOR=f"203.0.113.{number}")
    assert login(client, "victim", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.200").status_code == 429


def test_token_endpoint_rate_is_per_socket_address_whatever_the_header(settings, make_user):
    """The DRF throttle of the token endpoint (10/min by default) keys on the socket address too."""
    settings.AXES_FAILURE_LIMIT = 1000
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "auth_token": "3/min"},
    }
    statuses = [
        token_login(None, f"nobody{number}", "wrong", HTTP_X_FORWARDED_FOR=f"198.51.100.{number}").status_code
        for number in range(5)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_with_one_declared_proxy_the_address_is_the_one_it_appended(client, settings, make_user):
    settings.API_NUM_PROXIES = 1
    make_user("victim", password=PASSWORD)
    for number in range(LIMIT):
        # The proxy (the socket, 10.0.0.1) appends the client's address; what the client wrote comes before.
        website_login(
            client, f"someone{number}", "wrong", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=f"1.2.3.{number}, 7.7.7.7"
        )
    assert (
        website_login(client, "victim", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="7.7.7.7").status_code
        == 429
    )
    assert (
        website_login(client, "victim", PASSWORD, REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="8.8.8.8").status_code
        == 302
    )


def test_a_password_reset_by_email_lifts_the_lockout_and_revokes_keys(client, make_user):
    user = make_user("alice", password=PASSWORD)
    user.email = "alice@example.com"
    user.save(update_fields=["email"])
    _key, raw_key = api_key_create(user=user, name="bot")
    for _ in range(LIMIT):
        website_login(client, "alice", "wrong")
    assert website_login(client, "alice", PASSWORD).status_code == 429
    locked_page = website_login(client, "alice", PASSWORD).content.decode()
    assert 'href="/accounts/password/reset/"' in locked_page

    assert client.post("/accounts/password/reset/", {"email": "alice@example.com"}).status_code == 302
    assert len(mail.outbox) == 1
    link = re.search(r"http://testserver(/accounts/password/reset/\S+/)", str(mail.outbox[0].body))
    assert link is not None
    form_page = client.get(link.group(1), follow=True)
    assert form_page.status_code == 200
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a-brand-new-password", "new_password2": "a-brand-new-password"},
        follow=True,
    )
    assert "every API key of your account has been revoked" in done.content.decode()
    assert ApiKey.objects.get(user=user).revoked_at is not None

    assert website_login(client, "alice", "a-brand-new-password").status_code == 302
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    assert api.get("/api/v1/me/").status_code == 401


def test_password_reset_requests_are_limited_per_address(client, settings, make_user):
    settings.FORECASTLE_PASSWORD_RESET_RATE = "2/hour"
    user = make_user("alice", password=PASSWORD)
    user.email = "alice@example.com"
    user.save(update_fields=["email"])
    statuses = [client.post("/accounts/password/reset/", {"email": "alice@example.com"}).status_code for _ in range(3)]
    assert statuses == [302, 302, 429]
    assert len(mail.outbox) == 2
