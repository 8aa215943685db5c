"""Scoped API keys: each operation declares the scope it needs, one permission class checks it, and every
write endpoint is walked here with a key that lacks its scope. Keys can expire; keys made before scopes keep
full access (migration 0004)."""

import importlib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.apps import apps as django_apps
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ALL_SCOPES, ApiKey, Scope
from accounts.services import api_key_create
from config.core.api import READ_SCOPE, Undeclared, required_scope
from markets.models import Market, Trade

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"


def client_with(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


def keyed(user, scopes, **extra) -> APIClient:
    _key, raw_key = api_key_create(user=user, name="scoped", scopes=scopes, **extra)
    return client_with(raw_key)


def assert_error(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    return body["error"]


def test_a_read_only_key_cannot_trade_and_nothing_changes(make_user, make_market):
    market = make_market("scoped")
    trader = make_user("reader")
    client = keyed(trader, [Scope.READ])
    assert client.get(f"/api/v1/markets/{market.slug}/").status_code == 200
    error = assert_error(
        client.post(f"/api/v1/markets/{market.slug}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}),
        403,
        "insufficient_scope",
    )
    assert "'trade' scope" in error["message"]
    assert not Trade.objects.exists()
    market.refresh_from_db()
    assert market.volume == Decimal(0)


def test_a_trade_key_trades(make_user, make_market):
    market = make_market("scoped")
    client = keyed(make_user(), [Scope.READ, Scope.TRADE])
    response = client.post(
        f"/api/v1/markets/{market.slug}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
    )
    assert response.status_code == 201, response.content
    assert Trade.objects.count() == 1


def test_a_key_without_read_cannot_read(make_user, make_market):
    make_market("scoped")
    client = keyed(make_user(), [Scope.TRADE])
    assert_error(client.get("/api/v1/markets/scoped/"), 403, "insufficient_scope")
    assert_error(client.get("/api/v1/me/"), 403, "insufficient_scope")


def test_a_session_is_not_limited_by_scopes(make_user, make_market):
    market = make_market("scoped")
    client = APIClient()
    client.force_login(make_user())
    response = client.post(
        f"/api/v1/markets/{market.slug}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
    )
    assert response.status_code == 201, response.content


def api_routes(patterns=None, prefix=""):
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            yield from api_routes(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern) and prefix.startswith("api/v1/"):
            yield prefix + str(pattern.pattern), pattern


def view_class(pattern):
    return getattr(pattern.callback, "view_class", None) or getattr(pattern.callback, "cls", None)


def concrete(route: str, values: dict[str, str]) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], route)


UNSAFE = ("POST", "PUT", "PATCH", "DELETE")


def write_operations():
    """(route, method, view) for every unsafe method an API view answers."""
    for route, pattern in api_routes():
        view = view_class(pattern)
        for method in UNSAFE:
            if view is not None and hasattr(view, method.lower()):
                yield route, method, view


def test_the_walk_finds_the_write_endpoints():
    found = {(route, method) for route, method, _view in write_operations()}
    assert ("api/v1/markets/<slug:slug>/trades/", "POST") in found
    assert ("api/v1/markets/<slug:slug>/resolution/", "POST") in found
    assert ("api/v1/markets/", "POST") in found


def test_every_write_endpoint_declares_its_scope():
    undeclared = [
        f"{method} {route}"
        for route, method, view in write_operations()
        if isinstance(required_scope(view, method), Undeclared)
    ]
    assert undeclared == [], f"declare required_scope on these API classes: {undeclared}"


def test_every_write_endpoint_refuses_a_key_without_its_scope(make_user, make_market):
    """A staff key holding every scope but the one an operation needs gets 403 insufficient_scope, before the
    operation looks at its input; the same request with the scope gets past the check."""
    staff = make_user("boss", is_staff=True)
    make_market("walked")
    values = {
        "slug": "walked",
        "username": "boss",
        "comment_id": "1",
        "proposal_id": "1",
        "order_id": "1",
        "forecast_id": "1",
    }
    checked = []
    for route, method, view in write_operations():
        scope = required_scope(view, method)
        if scope is None:
            continue
        assert isinstance(scope, str)
        path = concrete(route, values)
        without = keyed(staff, [s for s in ALL_SCOPES if s != scope])
        response = getattr(without, method.lower())(path, {}, format="json")
        assert_error(response, 403, "insufficient_scope")
        with_scope = keyed(staff, [scope])
        response = getattr(with_scope, method.lower())(path, {}, format="json")
        assert response.status_code != 403 or response.json()["error"]["code"] != "insufficient_scope", path
        ApiKey.objects.filter(user=staff).update(revoked_at=timezone.now())
        checked.append(f"{method} {path}")
    assert len(checked) >= 3, checked


def test_every_read_endpoint_needs_the_read_scope(make_user, make_market):
    user = make_user("reader")
    make_market("walked")
    client = keyed(user, [Scope.TRADE])
    refused = []
    for route, pattern in api_routes():
        view = view_class(pattern)
        if view is None or not hasattr(view, "get"):
            continue
        assert required_scope(view, "GET") == READ_SCOPE, route
        values = {
            "slug": "walked",
            "username": "reader",
            "comment_id": "1",
            "name": "any.zip",
            "proposal_id": "1",
            "order_id": "1",
            "forecast_id": "1",
        }
        response = client.get(concrete(route, values))
        if response.status_code == 403 and response.json()["error"]["code"] == "insufficient_scope":
            refused.append(route)
        else:
            pytest.fail(f"GET {route} answered {response.status_code} to a key without the read scope")
    assert len(refused) >= 5


def test_staff_scopes_work_only_for_staff(make_user, make_market):
    market = make_market("walked")
    ordinary = make_user("ordinary")
    response = APIClient().post(
        TOKEN,
        {"username": "ordinary", "password": "a-long-password", "scopes": ["read", "resolve"]},
        format="json",
    )
    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == ["scopes"]
    assert not ApiKey.objects.filter(user=ordinary).exists()
    staff = make_user("staffer", is_staff=True)
    resolver = keyed(staff, [Scope.RESOLVE])
    response = resolver.post(
        f"/api/v1/markets/{market.slug}/resolution/",
        {"kind": "outcome", "outcome": "YES", "reason": "It did."},
        format="json",
    )
    assert response.status_code == 202, response.content


def test_the_token_endpoint_makes_a_scoped_expiring_key(make_user, make_market):
    make_market("walked")
    make_user("ana", password="correct horse battery")
    expires = timezone.now() + timedelta(days=7)
    response = APIClient().post(
        TOKEN,
        {
            "username": "ana",
            "password": "correct horse battery",
            "name": "reader",
            "scopes": ["read"],
            "expires_at": expires.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["scopes"] == ["read"]
    stored = ApiKey.objects.get(prefix=body["prefix"])
    assert stored.scopes == ["read"]
    assert stored.expires_at == expires
    client = client_with(body["key"])
    assert client.get("/api/v1/me/").status_code == 200
    assert_error(
        client.post("/api/v1/markets/walked/trades/", {"outcome": "YES", "side": "buy", "amount": "1"}),
        403,
        "insufficient_scope",
    )


def test_without_scopes_a_key_gets_everything_its_account_may_hold(make_user):
    make_user("ana", password="correct horse battery")
    make_user("boss", password="correct horse battery", is_staff=True)
    for username, expected in (("ana", ["read", "trade"]), ("boss", ["read", "trade", "markets", "resolve"])):
        response = APIClient().post(TOKEN, {"username": username, "password": "correct horse battery"}, format="json")
        assert response.json()["scopes"] == expected


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"scopes": "read"}, "scopes"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
    ],
)
def test_bad_scopes_or_expiry_are_400_naming_the_field(make_user, extra, field):
    make_user("ana", password="correct horse battery")
    response = APIClient().post(TOKEN, {"username": "ana", "password": "correct horse battery", **extra}, format="json")
    error = assert_error(response, 400, "invalid")
    assert [name.split(".")[0] for name in error["fields"]] == [field]  # "scopes.0" names the first item
    assert not ApiKey.objects.exists()


def test_an_expired_key_is_401_even_while_it_is_remembered(make_user, monkeypatch):
    user = make_user()
    now = timezone.now()
    _key, raw_key = api_key_create(user=user, name="short", expires_at=now + timedelta(minutes=5))
    client = client_with(raw_key)
    assert client.get("/api/v1/me/").status_code == 200  # now remembered in the key cache
    later = now + timedelta(minutes=6)
    monkeypatch.setattr("accounts.services.timezone.now", lambda: later)
    assert_error(client.get("/api/v1/me/"), 401, "authentication_failed")


def test_keys_made_before_scopes_keep_full_access(make_user):
    """The data step of migration 0004, run against a key as the old schema left it (no scopes)."""
    key, _raw = api_key_create(user=make_user(), name="old")
    ApiKey.objects.filter(pk=key.pk).update(scopes=[])
    migration = importlib.import_module("accounts.migrations.0004_api_key_scopes_and_expiry")
    migration.grant_existing_keys_full_access(django_apps, None)
    key.refresh_from_db()
    assert key.scopes == [scope.value for scope in ALL_SCOPES]


def test_the_schema_names_each_operations_scope():
    schema = APIClient().get("/api/schema/?format=json").json()
    trade = schema["paths"]["/api/v1/markets/{slug}/trades/"]["post"]
    assert trade["x-required-scope"] == "trade"
    assert "`trade` scope" in trade["description"]
    assert schema["paths"]["/api/v1/markets/{slug}/resolution/"]["post"]["x-required-scope"] == "resolve"
    assert schema["paths"]["/api/v1/markets/"]["get"]["x-required-scope"] == "read"


def test_market_create_needs_the_markets_scope(make_user):
    staff = make_user("boss", is_staff=True)
    body = {
        "slug": "scoped-create",
        "question": "Will scopes hold?",
        "kind": "binary",
        "liquidity": "50",
        "closes_at": (timezone.now() + timedelta(days=3)).isoformat(),
    }
    assert_error(
        keyed(staff, [Scope.READ, Scope.RESOLVE]).post("/api/v1/markets/", body, format="json"),
        403,
        "insufficient_scope",
    )
    assert not Market.objects.filter(slug="scoped-create").exists()
    response = keyed(staff, [Scope.MARKETS]).post("/api/v1/markets/", body, format="json")
    assert response.status_code == 201, response.content
