"""Parallel test workers (pytest-xdist, `make test-fast`) share one Redis database but none of its keys: each
worker's cache, broker queue and stream live under a namespace of its own (config/settings/test.py), so one
worker's broker flush or queue count never sees the other's tasks."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHOW_KEYS = """
from django.conf import settings
import json
print(json.dumps({
    "namespace": settings.TEST_REDIS_NAMESPACE,
    "cache": settings.CACHES["default"]["KEY_PREFIX"],
    "broker": settings.CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"],
    "stream": settings.FORECASTLE_STREAM_KEY,
}))
"""


def redis_keys(worker: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"PYTEST_XDIST_WORKER", "STREAM_REDIS_KEY"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings.test", "FORECASTLE_TEST_DB": "_probe"})
    if worker is not None:
        env["PYTEST_XDIST_WORKER"] = worker
    shown = subprocess.run(
        [sys.executable, "-c", SHOW_KEYS], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return json.loads(shown.stdout)


def test_each_xdist_worker_keeps_its_redis_keys_under_a_namespace_of_its_own():
    serial, first, second = redis_keys(None), redis_keys("gw0"), redis_keys("gw1")
    namespaces = [keys["namespace"] for keys in (serial, first, second)]
    assert len(set(namespaces)) == 3
    for keys in (serial, first, second):
        assert keys["cache"] == keys["namespace"]
        assert keys["broker"] == keys["namespace"] + ":"
        assert keys["stream"].startswith(keys["namespace"] + ":")
    # No worker's namespace is a prefix of another's: a flush (a prefix match) stays within its worker.
    for one in (serial, first, second):
        for other in (serial, first, second):
            if one is not other:
                assert not other["broker"].startswith(one["broker"])
