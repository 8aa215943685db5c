"""A draft market does not exist for anyone but staff: every route with a market slug, walked from the URLconf
(so a new route cannot skip this test), answers 404 to a non-staff user asking with a draft's slug.

Issue 8, item 6: `GET /api/v1/markets/{draft}/scores/` answered 200 with the draft (it looked markets up on
its own, with no draft policy); every other read was 404. Each method a non-staff user may call is tried: one
that refuses them on an open market too (403, or the login redirect of a staff page) is staff-only and skipped.
"""

from collections.abc import Iterator

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from markets.models import Trade
from markets.services import proposal_create

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")
# Enough for every endpoint to get past its input checks to the market lookup: a valid trade (body or query),
# which is a valid limit order and standing forecast too.
TRADE = {
    "outcome": "YES",
    "side": "buy",
    "amount": "1",
    "mode": "amount",
    "value": "1",
    "limit": "0.5",
    "size": "1",
    "belief": "0.5",
    "band": "3",
    "budget": "1",
}


def routes(patterns: list[URLPattern | URLResolver] | None = None, prefix: str = "") -> Iterator[tuple[str, object]]:
    """(route, view) for every URL pattern, nested includes flattened."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield route, pattern.callback


def slug_routes(prefix: str) -> list[tuple[str, list[str]]]:
    """(route, methods its view answers) for every route under `prefix` with a market slug."""
    found = []
    for route, view in routes():
        if route.startswith(prefix) and "<slug:slug>" in route:
            view_class = getattr(view, "view_class", None)
            methods = [m for m in METHODS if hasattr(view_class, m)] if view_class else ["get", "post"]
            found.append((route, methods))
    return found


API_ROUTES = slug_routes("api/v1/")
PAGE_ROUTES = [(route, methods) for route, methods in slug_routes("") if not route.startswith("api/")]


def test_the_walk_finds_the_routes_it_must():
    found = {route for route, _methods in API_ROUTES}
    assert "api/v1/markets/<slug:slug>/scores/" in found
    assert "api/v1/markets/<slug:slug>/trades/" in found
    assert len(API_ROUTES) >= 6
    assert len(PAGE_ROUTES) >= 5


@pytest.fixture
def markets(make_market, make_user):
    draft, open_one = make_market("the-draft", open_now=False), make_market("the-open-one")
    # The challenge route names a proposal: the open market's (which closes it; trades then get a 422).
    proposal = proposal_create(
        market=open_one,
        user=make_user("resolver", is_staff=True),
        kind="annulled",
        reason="Walked.",
        source_url="https://example.org/",
        known_at=None,
    )
    return draft, open_one, proposal


def concrete(route: str, slug: str, markets) -> str:
    return "/" + route.replace("<slug:slug>", slug).replace("<int:proposal_id>", str(markets[2].pk))


def call(client, method: str, path: str):
    if method == "get":
        return client.get(path, TRADE)
    return (
        getattr(client, method)(path, TRADE, format="json")
        if isinstance(client, APIClient)
        else client.post(path, TRADE)
    )


def staff_only(response) -> bool:
    """Refused to a non-staff user whatever the market: a 401/403, or a staff page's redirect to a login."""
    redirect = response.status_code == 302 and "login" in response["Location"]
    return response.status_code in (401, 403) or redirect


@pytest.mark.parametrize(("route", "methods"), API_ROUTES, ids=[route for route, _ in API_ROUTES])
def test_every_api_route_hides_a_draft_from_a_non_staff_user(make_user, markets, route, methods):
    client = APIClient()
    client.force_authenticate(make_user("forecaster"))
    for method in methods:
        open_response = call(client, method, concrete(route, "the-open-one", markets))
        draft_response = call(client, method, concrete(route, "the-draft", markets))
        assert open_response.status_code != 404, (method, open_response.content)
        if staff_only(open_response):
            assert draft_response.status_code == open_response.status_code, (method, draft_response.content)
            continue
        assert draft_response.status_code == 404, (method, route, draft_response.status_code, draft_response.content)
        assert draft_response.json()["error"]["code"] == "not_found"
    assert not Trade.objects.filter(market__slug="the-draft").exists()


@pytest.mark.parametrize(("route", "methods"), PAGE_ROUTES, ids=[route for route, _ in PAGE_ROUTES])
def test_every_page_hides_a_draft_from_a_non_staff_user(client, make_user, markets, route, methods):
    client.force_login(make_user("forecaster"))
    for method in methods:
        open_response = call(client, method, concrete(route, "the-open-one", markets))
        draft_response = call(client, method, concrete(route, "the-draft", markets))
        if staff_only(open_response) or open_response.status_code == 405:
            assert draft_response.status_code == open_response.status_code
            continue
        assert open_response.status_code != 404, (method, route)
        assert draft_response.status_code == 404, (method, route, draft_response.status_code)


def test_staff_still_reach_a_draft_where_they_work_on_it(client, make_user, markets):
    client.force_login(make_user("editor", is_staff=True))
    assert client.get("/markets/the-draft/").status_code == 200
    assert client.get("/markets/the-draft/edit/").status_code == 200
    assert client.get("/staff/markets/the-draft/resolve/").status_code == 200
    api = APIClient()
    api.force_authenticate(make_user("staff-api", is_staff=True))
    # The public reads are served from a cache every caller shares: a draft is not there for staff either.
    assert api.get("/api/v1/markets/the-draft/").status_code == 404
