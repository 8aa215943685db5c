"""Test settings: `make test`. Several test runs may share one server, so the test database name
carries FORECASTLE_TEST_DB when it is set (pytest-xdist appends its own worker suffix)."""

import os

from config.settings.base import *  # noqa: F403
from config.settings.base import CACHES, CELERY_BROKER_TRANSPORT_OPTIONS, DATABASES

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
DATABASES["default"]["TEST"] = {"NAME": "test_forecastle" + os.environ.get("FORECASTLE_TEST_DB", "")}
DATABASES["default"]["CONN_MAX_AGE"] = 0
# Holds a settlement open for this many seconds so a test can SIGKILL the worker mid-task.
FORECASTLE_SETTLEMENT_PAUSE = float(os.environ.get("FORECASTLE_SETTLEMENT_PAUSE", "0") or 0)
# Tests never run collectstatic: WhiteNoise serves from the app and project static folders instead.
WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Every test that signs up or asks for a reset comes from 127.0.0.1: the per-address limits are raised
# here, and the tests of those limits set their own rate on a cache of their own (isolated_cache).
FORECASTLE_SIGNUP_RATE = "10000/hour"
FORECASTLE_PASSWORD_RESET_RATE = "10000/hour"  # noqa: S105 (a rate, not a password)
# A second connection to the test database, as a stand-in replica for the read-replica router's tests
# (tests/operations/test_replica_router.py sets DATABASE_REPLICAS = ["replica"]; nothing else uses it).
DATABASES["replica"] = {**DATABASES["default"], "TEST": {"MIRROR": "default"}}

# Everything the tests keep in Redis lives under one namespace, so a test run can share a Redis server, even
# its database number, with a running `make run` (whose keys have no such prefix) or with another test run
# (FORECASTLE_TEST_DB differs): cache keys carry it as their prefix (and the cache's clear() deletes only
# those), Celery's broker keys and queues carry it as kombu's global key prefix, and tests empty the broker
# by deleting that prefix's keys, never the database.
# pytest-xdist's workers share the run's FORECASTLE_TEST_DB but not its Redis namespace: each worker's broker
# queue, flushes, stream and counters are its own (a worker's flush would drop the other's queued tasks, and its
# Celery worker would run them against the wrong database). The processes a test starts inherit the variable.
TEST_REDIS_NAMESPACE = "forecastle-test" + os.environ.get("FORECASTLE_TEST_DB", "")
if os.environ.get("PYTEST_XDIST_WORKER"):
    TEST_REDIS_NAMESPACE += "-" + os.environ["PYTEST_XDIST_WORKER"]
CACHES["default"]["BACKEND"] = "tests.redis_namespace.NamespacedRedisCache"
CACHES["default"]["KEY_PREFIX"] = TEST_REDIS_NAMESPACE
CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{TEST_REDIS_NAMESPACE}:"}
# The live stream's keys too; a stream test gives the server it starts a key of its own (STREAM_REDIS_KEY).
FORECASTLE_STREAM_KEY = os.environ.get("STREAM_REDIS_KEY") or f"{TEST_REDIS_NAMESPACE}:stream"
