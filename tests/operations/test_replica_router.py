"""The read-replica router (config/core/db_router.py) with a replica alias: in the tests "replica" is a second
connection to the test database (a test mirror), so which connection a query took is what is checked."""

import time
from typing import Any

import pytest
from django.db import connections
from django.test import Client
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from accounts.services import api_key_create
from markets.models import Trade
from tests.markets.settlement_helpers import buy

pytestmark = [
    pytest.mark.django_db(transaction=True, databases=["default", "replica"]),
]

MARKET = "replicated"
PUBLIC_READS = [
    "/",
    f"/markets/{MARKET}/",
    "/leaderboard/",
    "/api/v1/markets/",
    f"/api/v1/markets/{MARKET}/",
    f"/api/v1/markets/{MARKET}/history/",
    "/api/v1/leaderboard/",
]


@pytest.fixture
def replica(settings):
    settings.DATABASE_REPLICAS = ["replica"]
    settings.DATABASE_REPLICA_PIN_SECONDS = 30


@pytest.fixture
def market(make_market, make_user):
    staff, carol = make_user("staff", is_staff=True), make_user("carol")
    market = make_market(MARKET, created_by=staff)
    buy(carol, market, "YES", "20")
    return market


class Queries:
    """The SQL each connection ran while the block ran."""

    def __enter__(self) -> "Queries":
        self.primary = CaptureQueriesContext(connections["default"])
        self.replica = CaptureQueriesContext(connections["replica"])
        self.primary.__enter__()
        self.replica.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.replica.__exit__(*exc)
        self.primary.__exit__(*exc)

    @staticmethod
    def _market_reads(context: CaptureQueriesContext) -> list[str]:
        return [
            query["sql"]
            for query in context.captured_queries
            if '"markets_' in query["sql"] or '"forecast_' in query["sql"]
        ]

    @property
    def market_reads_on_primary(self) -> list[str]:
        return self._market_reads(self.primary)

    @property
    def market_reads_on_replica(self) -> list[str]:
        return self._market_reads(self.replica)


def api_client_for(user) -> APIClient:
    _key, raw_key = api_key_create(user=user, name="replica-test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    return client


@pytest.mark.usefixtures("replica", "market")
@pytest.mark.parametrize("path", PUBLIC_READS)
def test_public_reads_go_to_the_replica(path, isolated_cache):
    isolated_cache()  # a cold cache: the market's snapshot, cached when it was traded, must be read again
    with Queries() as queries:
        assert Client().get(path).status_code == 200
    assert queries.market_reads_on_replica
    assert queries.market_reads_on_primary == []


@pytest.mark.usefixtures("replica", "market")
def test_a_users_own_reads_after_their_trade_stay_on_the_primary(make_user, isolated_cache):
    alice, bob = make_user("alice"), make_user("bob")
    alice_api = api_client_for(alice)
    isolated_cache()  # a cold cache: the market's snapshot, cached when it was traded, must be read again
    with Queries() as queries:
        assert alice_api.get(f"/api/v1/markets/{MARKET}/").status_code == 200
    assert queries.market_reads_on_replica, "before any write, alice reads the replica too"

    traded = alice_api.post(
        f"/api/v1/markets/{MARKET}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
    )
    assert traded.status_code == 201, traded.content

    # (Reads the price cache answers send no query at all; these two read PostgreSQL.)
    for path in (f"/api/v1/markets/{MARKET}/history/", "/api/v1/markets/"):
        with Queries() as queries:
            assert alice_api.get(path).status_code == 200
        assert queries.market_reads_on_replica == [], path
        assert queries.market_reads_on_primary, path
    # Her trade shows at once: the primary has it.
    assert alice_api.get("/api/v1/me/trades/").json()["results"]
    # Someone who did not write still reads the replica (alice's pages may now be cached: bob reads the site).
    browser = Client()
    browser.force_login(bob)
    with Queries() as queries:
        assert browser.get(f"/markets/{MARKET}/").status_code == 200
    assert queries.market_reads_on_replica


@pytest.mark.usefixtures("replica", "market")
def test_a_website_trade_pins_the_session_user(make_user):
    alice = make_user("alice")
    browser = Client()
    browser.force_login(alice)
    with Queries() as queries:
        assert browser.get(f"/markets/{MARKET}/").status_code == 200
    assert queries.market_reads_on_replica
    response = browser.post(
        f"/markets/{MARKET}/trade/", {"outcome": "YES", "side": "buy", "mode": "amount", "value": "5"}
    )
    assert response.status_code < 400
    assert Trade.objects.filter(user=alice).exists()
    with Queries() as queries:
        assert browser.get(f"/markets/{MARKET}/").status_code == 200
    assert queries.market_reads_on_replica == []
    assert queries.market_reads_on_primary


@pytest.mark.usefixtures("replica", "market")
def test_the_pin_lapses_when_replication_has_caught_up(make_user, settings):
    settings.DATABASE_REPLICA_PIN_SECONDS = 1
    alice = make_user("alice")
    alice_api = api_client_for(alice)
    traded = alice_api.post(
        f"/api/v1/markets/{MARKET}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
    )
    assert traded.status_code == 201
    time.sleep(1.5)
    with Queries() as queries:
        assert alice_api.get(f"/api/v1/markets/{MARKET}/history/").status_code == 200
    assert queries.market_reads_on_replica


@pytest.mark.usefixtures("replica", "market")
def test_private_reads_and_writes_never_touch_the_replica(make_user):
    alice = make_user("alice")
    alice_api = api_client_for(alice)
    with Queries() as queries:
        assert alice_api.get("/api/v1/me/positions/").status_code == 200
        assert alice_api.get(f"/api/v1/markets/{MARKET}/quote/?outcome=YES&side=buy&amount=5").status_code == 200
        assert (
            alice_api.post(
                f"/api/v1/markets/{MARKET}/trades/", {"outcome": "YES", "side": "buy", "amount": "5"}, format="json"
            ).status_code
            == 201
        )
    assert queries.replica.captured_queries == []


@pytest.mark.usefixtures("market")
def test_without_replicas_everything_reads_the_primary():
    with Queries() as queries:
        for path in PUBLIC_READS:
            assert Client().get(path).status_code == 200
    assert queries.replica.captured_queries == []
    assert queries.market_reads_on_primary
