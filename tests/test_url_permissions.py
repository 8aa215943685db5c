"""Every URL pattern of the URLconf, walked from the resolver, is requested as an anonymous visitor, an
ordinary user (who owns the objects in the URL), another user, and staff; each gets what its access rule
says. The rules are listed per route name below: a new route that is not listed fails this test, so none
can skip the check. The admin's routes follow one rule: staff only (its login page aside).
"""

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiKey
from accounts.services import api_key_create
from markets.models import CommentReport, Market, Proposal
from markets.services import trade_execute
from markets.services.comments import comment_create, comment_report
from markets.services.datasets import dataset_build
from markets.services.orders import OrderRequest, order_place
from markets.services.standing import StandingRequest, standing_forecast_create
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "user", "other", "staff")
# Routes that hide the comment in their URL: each walks a comment of its own.
HIDING_ROUTES = ("api-comment-hide", "markets:comment-hide")

# Access rules. "public": everyone may. "login": any signed-in user. "staff": staff only. "owner": only
# the user the object in the URL belongs to (others get a 404, not a hint that it exists). "guest": a page
# for the signed-out (the signed-in are sent on). A rule per method; a method not listed answers 405.
# "login-form": as "login", but the signed-out get the form back with "Log in or sign up to trade" (422),
# so the htmx trade panel can show it in place.
PUBLIC, LOGIN, STAFF, OWNER, GUEST, LOGIN_FORM = "public", "login", "staff", "owner", "guest", "login-form"
RULES: dict[str, dict[str, str]] = {
    # The API.
    "api-me": {"GET": LOGIN},
    "api-auth-token": {"POST": PUBLIC},
    "api-markets": {"GET": PUBLIC, "POST": STAFF},
    "api-market-detail": {"GET": PUBLIC},
    "api-market-history": {"GET": PUBLIC},
    "api-market-quote": {"GET": PUBLIC},
    "api-market-trades": {"GET": PUBLIC, "POST": LOGIN},
    "api-market-orders": {"GET": PUBLIC, "POST": LOGIN},
    # DELETE (the owner's only): tests/markets/test_orders_api.py.
    "api-order-detail": {},
    "api-me-orders": {"GET": LOGIN},
    "api-market-standing-forecasts": {"POST": LOGIN},
    # DELETE (the owner's only): tests/markets/test_standing_api.py.
    "api-standing-forecast-detail": {},
    "api-me-standing-forecasts": {"GET": LOGIN},
    "api-market-resolution": {"POST": STAFF},
    "api-market-close": {"POST": STAFF},
    "api-market-extend": {"POST": STAFF},
    "api-market-halt": {"POST": STAFF},
    "api-market-resume": {"POST": STAFF},
    "api-market-liquidity": {"POST": STAFF},
    "api-market-outcomes": {"POST": STAFF},
    "api-market-events": {"GET": PUBLIC},
    "api-market-revisions": {"GET": PUBLIC},
    "api-market-proposals": {"GET": PUBLIC, "POST": STAFF},
    "api-proposal-challenges": {"POST": LOGIN},
    "api-proposal-decision": {"POST": STAFF},
    "api-comment-hide": {"POST": STAFF},
    "api-me-positions": {"GET": LOGIN},
    "api-me-trades": {"GET": LOGIN},
    "api-market-comments": {"GET": PUBLIC, "POST": LOGIN},
    "api-market-follow": {"POST": LOGIN},
    # PATCH and DELETE (the author's only): tests/markets/test_comments_api.py.
    "api-comment-detail": {},
    "api-comment-reports": {"POST": LOGIN},
    "api-me-feed": {"GET": LOGIN},
    "api-me-notifications": {"GET": LOGIN},
    "api-me-notifications-read": {"POST": LOGIN},
    "api-user-follow": {"POST": LOGIN},
    "api-me-export": {"GET": LOGIN},
    "api-market-export": {"GET": PUBLIC},
    "api-datasets": {"GET": PUBLIC},
    "api-dataset-download": {"GET": PUBLIC},
    "api-leaderboard": {"GET": PUBLIC},
    "api-user-detail": {"GET": PUBLIC},
    "api-market-scores": {"GET": PUBLIC},
    # Served by the stream process; the web tier answers 421 (markets/apis/stream.py).
    "api-stream": {"GET": PUBLIC},
    "api-schema": {"GET": PUBLIC},
    "api-docs": {"GET": PUBLIC},
    "api-redoc": {"GET": PUBLIC},
    # Accounts.
    "signup": {"GET": GUEST, "POST": GUEST},
    "login": {"GET": GUEST, "POST": GUEST},
    "logout": {"POST": PUBLIC},
    "password_change": {"GET": LOGIN, "POST": LOGIN},
    "password_change_done": {"GET": LOGIN},
    "password_reset": {"GET": PUBLIC, "POST": PUBLIC},
    "admin_password_reset": {"GET": PUBLIC, "POST": PUBLIC},
    "password_reset_done": {"GET": PUBLIC},
    "password_reset_confirm": {"GET": PUBLIC, "POST": PUBLIC},
    "password_reset_complete": {"GET": PUBLIC},
    "api-keys": {"GET": LOGIN, "POST": LOGIN},
    "api-key-revoke": {"POST": OWNER},
    "notifications": {"GET": LOGIN, "POST": LOGIN},
    "notification-settings": {"GET": LOGIN, "POST": LOGIN},
    # The signed token is the credential: no login (an invalid one is a 400 page).
    "unsubscribe": {"GET": PUBLIC, "POST": PUBLIC},
    "user-follow": {"POST": LOGIN},
    # Pages.
    "forecast:leaderboard": {"GET": PUBLIC},
    "forecast:user-profile": {"GET": PUBLIC},
    "markets:list": {"GET": PUBLIC},
    "markets:portfolio": {"GET": LOGIN},
    "markets:create": {"GET": STAFF, "POST": STAFF},
    "markets:detail": {"GET": PUBLIC},
    "markets:edit": {"GET": STAFF, "POST": STAFF},
    "markets:live": {"GET": PUBLIC},
    "markets:trade-preview": {"GET": PUBLIC},
    "markets:trade": {"POST": LOGIN_FORM},
    "markets:order-place": {"POST": LOGIN},
    "markets:order-cancel": {"POST": OWNER},
    "markets:staff-resolutions": {"GET": STAFF},
    "markets:staff-resolve": {"GET": STAFF, "POST": STAFF},
    "markets:staff-control": {"GET": STAFF, "POST": STAFF},
    "markets:comment-create": {"POST": LOGIN},
    "markets:standing-create": {"POST": LOGIN},
    "markets:standing-cancel": {"POST": OWNER},
    "markets:follow": {"POST": LOGIN},
    "markets:comment-edit": {"GET": OWNER, "POST": OWNER},
    "markets:comment-report": {"POST": LOGIN},
    "markets:comment-hide": {"POST": STAFF},
    "markets:comment-delete": {"POST": OWNER},
    "markets:staff-comments": {"GET": STAFF},
    "markets:staff-report-dismiss": {"POST": STAFF},
    "markets:challenge": {"POST": LOGIN},
    "markets:staff-proposal-decide": {"POST": STAFF},
}
# Reachable by anyone: the admin's own login page and its catch-all (which redirects to it).
ADMIN_PUBLIC = {"admin:login", "admin:logout"}


@dataclass(frozen=True)
class Route:
    route: str
    name: str
    is_regex: bool


def routes(patterns=None, prefix: str = "", namespace: str = "") -> Iterator[Route]:
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            inner = namespace + (f"{pattern.namespace}:" if pattern.namespace else "")
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        elif isinstance(pattern, URLPattern):
            yield Route(
                prefix + str(pattern.pattern),
                namespace + (pattern.name or ""),
                is_regex=isinstance(pattern.pattern, RegexPattern),
            )


@pytest.fixture
def world(make_user, make_market, settings, tmp_path):
    owner = make_user("owner")
    other = make_user("other")
    staff = make_user("staffer", is_staff=True)
    market = make_market(
        slug="walked",
        question="Will every route be checked?",
        kind=Market.Kind.BINARY,
        liquidity=50,
        closes_at=timezone.now() + timedelta(days=3),
    )
    trade_execute(user=owner, market=market, request=trade_request("YES", "buy", amount="5"))
    key, _raw = api_key_create(user=owner, name="owner's key")
    settings.FORECASTLE_DATASETS_DIR = str(tmp_path / "datasets")
    dataset = dataset_build()
    # A proposal for the challenge route, written as a row: the service would close the market, and the
    # walk needs it open (the trade page's login prompt is only for an open market).
    proposal = Proposal.objects.create(
        market=market,
        kind="annulled",
        reason="Walked.",
        source_url="https://example.org/",
        created_by=staff,
        created_at=timezone.now(),
        challenge_until=timezone.now() + timedelta(days=1),
    )
    order = order_place(
        user=owner,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal("0.2"), size=Decimal("1")),
    ).order
    comment = comment_create(market=market, author=owner, body="The owner's comment.")
    standing = standing_forecast_create(
        user=owner,
        market=market,
        request=StandingRequest(outcome="YES", belief=Decimal("0.5"), band_points=Decimal("3"), budget=Decimal("10")),
    ).forecast
    comment_report(comment=comment, reporter=other, reason="Walked.")
    # Hiding a comment ends it for every later route of the walk: each hiding route gets one of its own.
    hideable = {
        name: comment_create(market=market, author=owner, body=f"A comment staff may hide ({name}).")
        for name in HIDING_ROUTES
    }
    return {
        "hideable": hideable,
        "owner": owner,
        "other": other,
        "staff": staff,
        "market": market,
        "key": key,
        "comment": comment,
        "report": CommentReport.objects.get(comment=comment),
        "dataset": dataset,
        "proposal": proposal,
        "order": order,
        "standing": standing,
    }


def concrete_path(route: Route, world) -> str:
    if route.is_regex:
        # The admin's catch-all: any address under /admin/ that names nothing.
        return "/admin/nothing-here/"
    values = {
        "slug": world["market"].slug,
        "username": world["owner"].username,
        "key_id": str(world["key"].pk),
        "comment_id": str(world["hideable"].get(route.name, world["comment"]).pk),
        "report_id": str(world["report"].pk),
        "market_id": str(world["market"].pk),
        "uidb64": "MQ",
        "token": "set-password",
        "object_id": str(world["market"].pk),
        "id": str(world["market"].pk),
        "content_type_id": "1",
        "action": "halt",
        "name": world["dataset"].name,
        "proposal_id": str(world["proposal"].pk),
        "order_id": str(world["order"].pk),
        "forecast_id": str(world["standing"].pk),
    }
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda match: values[match.group(1)], route.route)


def client_for(role: str, world, *, api: bool, fresh: bool = False):
    """One signed-in client per role and kind, reused across the walk (a fresh one for what signs out)."""
    clients = world.setdefault("clients", {})
    if fresh or (role, api) not in clients:
        client = APIClient() if api else Client()
        user = {"anonymous": None, "user": world["owner"], "other": world["other"], "staff": world["staff"]}[role]
        if user is not None:
            client.force_login(user)
        if fresh:
            return client
        clients[role, api] = client
    return clients[role, api]


def denied(response) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    location = response.headers.get("Location", "")
    return response.status_code == 302 and ("/accounts/login/" in location or "/admin/login/" in location)


def allowed_roles(rule: str) -> set[str]:
    return {
        PUBLIC: set(ROLES),
        LOGIN: {"user", "other", "staff"},
        LOGIN_FORM: {"user", "other", "staff"},
        STAFF: {"staff"},
        OWNER: {"user"},
        GUEST: {"anonymous"},
    }[rule]


def request(client, method: str, path: str, *, api: bool):
    if method == "GET":
        return client.get(path)
    return client.post(path, {}, format="json") if api else client.post(path, {})


def test_every_route_has_an_access_rule():
    unlisted = sorted(
        {route.name or route.route for route in routes() if not route.route.startswith("admin/")} - set(RULES)
    )
    assert unlisted == [], f"routes without an access rule in this test: {unlisted}"
    stale = sorted(set(RULES) - {route.name for route in routes()})
    assert stale == [], f"rules for routes that no longer exist: {stale}"


@pytest.mark.parametrize("role", ROLES)
def test_every_route_answers_each_role_by_its_rule(world, role):
    failures = []
    for route in routes():
        if route.route.startswith("admin/"):
            continue
        path = concrete_path(route, world)
        api = path.startswith("/api/")
        for method in ("GET", "POST"):
            rule = RULES[route.name].get(method)
            client = client_for(role, world, api=api, fresh=route.name == "logout")
            response = request(client, method, path, api=api)
            if rule is None:
                # Who is asking is checked before the method: a refusal may come first.
                if response.status_code != 405 and not (role not in ("staff",) and denied(response)):
                    failures.append(f"{method} {path}: {response.status_code}, expected 405")
                continue
            if rule == GUEST and role != "anonymous":
                # The signed-in are sent on (to the markets), not refused.
                if response.status_code != 302:
                    failures.append(f"{method} {path} as {role}: {response.status_code}, expected a redirect")
                continue
            if rule == LOGIN_FORM and role == "anonymous":
                if response.status_code != 422 or "Log in or sign up to trade." not in response.content.decode():
                    failures.append(f"{method} {path} as anonymous: {response.status_code}, expected the login prompt")
                continue
            expected_allowed = role in allowed_roles(rule)
            if denied(response) == expected_allowed:
                verdict = "denied" if expected_allowed else "allowed"
                failures.append(f"{method} {path} as {role}: {response.status_code} ({verdict}), rule {rule}")
    assert failures == [], "\n".join(failures)


@pytest.mark.parametrize("role", ROLES)
def test_every_admin_route_is_for_staff_only(world, role):
    failures = []
    for route in routes():
        if not route.route.startswith("admin/") or route.name in ADMIN_PUBLIC:
            continue
        path = concrete_path(route, world)
        response = client_for(role, world, api=False).get(path)
        if role == "staff":
            if denied(response) and response.status_code != 403 and response.status_code != 404:
                failures.append(f"GET {path} as staff: {response.status_code}")
        elif not denied(response):
            failures.append(f"GET {path} as {role}: {response.status_code}, expected the admin login")
    assert failures == [], "\n".join(failures)
    assert admin.site.is_registered(Market)


def test_the_owner_key_was_not_revoked_by_anyone_else(world):
    """The walk POSTs each role to the owner's revoke address: only the owner's own request may count."""
    for role in ("other", "staff"):
        client_for(role, world, api=False).post(f"/accounts/api-keys/{world['key'].pk}/revoke/")
    assert ApiKey.objects.get(pk=world["key"].pk).revoked_at is None
