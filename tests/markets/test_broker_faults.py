"""Issue 8, finding 5 (faults): resolving while Redis was down recorded the resolution but answered 500
(the settlement message failed after commit). Now the answer is a success ("settlement queued"), the
sweeper settles the market once the broker is back, and a worker that lost the broker waits for it
instead of giving up.

Each test runs a Redis of its own (tests/redis_server.py) and stops it: the Redis every other test
shares is never touched."""

import pytest
from celery import current_app
from rest_framework.test import APIClient

from markets.models import Market
from markets.services import markets_reconcile
from markets.tasks import settlements_sweep
from tests.celery_worker import celery_worker, wait_for
from tests.markets.settlement_helpers import buy
from tests.redis_server import broker_at, redis_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def market_status(market: Market) -> str:
    return Market.objects.values_list("status", flat=True).get(pk=market.pk)


def test_workers_retry_the_broker_forever():
    assert current_app.conf.broker_connection_max_retries is None
    assert current_app.conf.broker_connection_retry_on_startup is True


def test_a_resolution_while_the_broker_is_down_is_queued_and_the_sweeper_settles_it(make_market, make_user):
    staff = make_user("staff", is_staff=True)
    market = make_market("broker-down", created_by=staff, outcomes=3)
    buy(make_user("alice"), market, "O0", "30")
    buy(make_user("bob"), market, "O1", "20")
    client = APIClient()
    client.force_login(staff)

    with (
        redis_server() as redis,
        broker_at(redis.url),
        celery_worker(name="faults", env={"CELERY_BROKER_URL": redis.url}) as worker,
    ):
        redis.stop()
        response = client.post(
            f"/api/v1/markets/{market.slug}/resolution/",
            {"kind": "outcome", "outcome": "O0", "reason": "The broker is down."},
            format="json",
        )
        assert response.status_code == 202, response.content
        assert response.json()["settlement"] == "queued"
        assert market_status(market) == Market.Status.RESOLVING

        # The worker has lost its broker and keeps trying; it does not exit.
        wait_for(lambda: "Trying again" in worker.output() or "Cannot connect" in worker.output(), timeout=30)
        assert worker.process.poll() is None

        redis.start()
        # The beat sweeper's run, without the two minutes' grace: the lost message is sent again.
        assert settlements_sweep(older_than_seconds=0) == 1
        wait_for(lambda: market_status(market) == Market.Status.RESOLVED, what="the sweeper's settlement")
        assert worker.process.poll() is None
    assert markets_reconcile() == []


def test_the_staff_page_says_settlement_queued_while_the_broker_is_down(make_market, client, make_user):
    staff = make_user("staff", is_staff=True)
    market = make_market("page-broker-down", created_by=staff, outcomes=3)
    client.force_login(staff)
    with redis_server() as redis, broker_at(redis.url):
        redis.stop()
        response = client.post(
            f"/staff/markets/{market.slug}/resolve/",
            {"kind": "outcome", "outcome": "O0", "reason": "Down again.", "confirm": "yes"},
            follow=True,
        )
    assert response.status_code == 200
    assert "Resolution recorded; settlement queued." in response.content.decode()
    assert market_status(market) == Market.Status.RESOLVING
