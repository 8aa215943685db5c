"""Redis is disposable: it holds the cache, the throttle counters and the broker's messages, and PostgreSQL holds
everything that must not be lost. Flushing Redis under a running worker loses nothing: reads and trades go on,
and the settlements whose messages vanished are finished by the sweeper (docs/operations.md)."""

import pytest
import redis
from celery import current_app
from django.conf import settings
from rest_framework.test import APIClient

from accounts.services import api_key_create
from markets.models import Market, Payout
from markets.services import markets_reconcile
from tests.celery_worker import broker_flush, celery_worker, wait_for
from tests.markets.settlement_helpers import buy
from tests.redis_namespace import namespace_delete

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SWEEP_TASK = "markets.tasks.settlements_sweep"


BROKER_PREFIX = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))


def redis_flush() -> None:
    """Empties everything the service keeps in Redis. In tests that is this run's namespace (its cache prefix and
    its broker prefix, config/settings/test.py), never the whole database: a `make run` may share it."""
    namespace_delete(str(settings.CACHES["default"]["LOCATION"]), f"{settings.CACHES['default']['KEY_PREFIX']}:")
    namespace_delete(settings.CELERY_BROKER_URL, BROKER_PREFIX)


def status(market: Market) -> str:
    return Market.objects.values_list("status", flat=True).get(pk=market.pk)


def pending_messages() -> int:
    return int(redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(f"{BROKER_PREFIX}celery"))


def test_losing_everything_in_redis_loses_no_trade_read_or_settlement(make_market, make_user):
    broker_flush()
    staff, alice, bob = make_user("staff", is_staff=True), make_user("alice"), make_user("bob")
    traded = make_market("traded", created_by=staff)
    queued = make_market("queued", created_by=staff)
    buy(alice, queued, "YES", "30")
    buy(bob, queued, "NO", "20")
    _key, raw_key = api_key_create(user=alice, name="redis-loss")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {raw_key}")
    staff_api = APIClient()
    staff_api.force_login(staff)

    # Before: a trade, a cached read, and a settlement whose only message sits in Redis (no worker yet).
    first = api.post(
        f"/api/v1/markets/{traded.slug}/trades/", {"outcome": "YES", "side": "buy", "amount": "10"}, format="json"
    )
    assert first.status_code == 201, first.content
    before = api.get(f"/api/v1/markets/{traded.slug}/").json()
    response = staff_api.post(
        f"/api/v1/markets/{queued.slug}/resolution/",
        {"kind": "outcome", "outcome": "YES", "reason": "It happened."},
        format="json",
    )
    assert response.status_code == 202, response.content
    assert pending_messages() == 1
    assert status(queued) == Market.Status.RESOLVING

    redis_flush()

    # Reads and trades go on, from PostgreSQL, and fill the cache again.
    assert pending_messages() == 0
    after = api.get(f"/api/v1/markets/{traded.slug}/")
    assert after.status_code == 200
    assert after.json()["outcomes"] == before["outcomes"]
    second = api.post(
        f"/api/v1/markets/{traded.slug}/trades/", {"outcome": "YES", "side": "buy", "amount": "10"}, format="json"
    )
    assert second.status_code == 201, second.content
    moved = api.get(f"/api/v1/markets/{traded.slug}/").json()["outcomes"]
    assert moved != before["outcomes"]  # not a stale cached answer

    with celery_worker(name="after-flush") as worker:
        # The settlement's message is gone; the sweeper (on beat every minute) finds the market in `resolving`.
        current_app.send_task(SWEEP_TASK, kwargs={"older_than_seconds": 0})
        wait_for(lambda: status(queued) == Market.Status.RESOLVED, what="the sweeper's settlement", timeout=60)

        # Flushed again while the worker runs: it keeps consuming, and new work is done as before.
        redis_flush()
        response = staff_api.post(
            f"/api/v1/markets/{traded.slug}/resolution/",
            {"kind": "outcome", "outcome": "NO", "reason": "It did not."},
            format="json",
        )
        assert response.status_code == 202, response.content
        wait_for(lambda: status(traded) == Market.Status.RESOLVED, what="a settlement after the flush", timeout=60)
        assert "Traceback" not in worker.output()

    broker_flush()
    assert markets_reconcile() == []
    # Paid exactly once, each trader of the queued market.
    assert Payout.objects.filter(market=queued).count() == 2
