"""The OpenAPI schema: it validates, the docs load offline, and fuzzing every operation with
schemathesis finds no 500 and no response that breaks the schema."""

import re
from datetime import timedelta

import pytest
import schemathesis
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.services import api_key_create
from config.wsgi import application
from markets.models import Market
from markets.services import trade_execute
from tests.factories import trade_request
from tests.hypothesis_profiles import examples

pytestmark = pytest.mark.django_db


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    assert text.startswith("openapi: 3.")
    for path in ("/api/v1/markets/{slug}/quote/", "/api/v1/markets/{slug}/history/", "/api/v1/auth/token/"):
        assert path in text


def test_the_schema_is_served():
    response = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    trade = schema["paths"]["/api/v1/markets/{slug}/trades/"]["post"]
    assert {"201", "200", "400", "401", "404", "409", "422", "429"} <= set(trade["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in trade["parameters"])


def test_swagger_ui_loads_from_our_own_static_files():
    response = APIClient().get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "the docs page must not load from a CDN"
    assets = re.findall(r"""(?:src|href)=["']?/static/([^"' >]+)""", html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert finders.find(asset), f"{asset} is not in the project's static files"


@pytest.fixture
def fuzz_world(make_market, db, make_user, settings):
    """A market with some history and a funded trader whose key the fuzzer sends; throttles opened wide."""
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": dict.fromkeys(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "100000/min"),
    }
    market = make_market(
        slug="rutte-nato",
        question="Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=30),
    )
    # The fuzzer calls the WSGI app directly; like Django's test client, keep the request from
    # closing the test's database connection (and its transaction) when it finishes.
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    trader = make_user("fuzzer")
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", shares="10"))
    _key, raw_key = api_key_create(user=trader, name="fuzz")
    yield {"Authorization": f"Token {raw_key}"}
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


# Loaded once at collection through the WSGI app: generating the schema touches no database.
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_operation_errors_or_breaks_its_schema(case, fuzz_world):
    # Half the generated slugs are replaced by a real market, so the happy paths are fuzzed too.
    if "slug" in (case.path_parameters or {}) and len(str(case.path_parameters["slug"])) % 2 == 0:
        case.path_parameters["slug"] = "rutte-nato"
    case.call_and_validate(
        headers=fuzz_world,
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
            response_headers_conformance,
        ],
    )
