"""Issue 8, finding 5 (inputs): an oversized body and deeply nested JSON, both reachable anonymously,
answered 500. Now a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 and JSON deeper than
API_MAX_JSON_DEPTH a 400, in the API's error shape under /api/ and as a page on the website."""

import json

import pytest
from django.core.exceptions import RequestDataTooBig
from rest_framework.test import APIClient

from config.core.api import api_exception_handler
from config.core.parsers import json_depth_exceeds

pytestmark = pytest.mark.django_db

TOKEN = "/api/v1/auth/token/"


def assert_api_error(response, status, code):
    assert response.status_code == status, response.content[:300]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "fields"}
    assert body["error"]["code"] == code
    return body["error"]


def test_an_oversized_json_body_is_a_413_in_the_api_shape():
    body = json.dumps({"username": "x" * 3_000_000, "password": "y"})
    error = assert_api_error(APIClient().post(TOKEN, body, content_type="application/json"), 413, "payload_too_large")
    assert "at most 2,621,440 bytes" in error["message"]


def test_a_body_over_a_lowered_limit_is_refused_on_every_api_route(settings, make_user):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    client = APIClient()
    client.force_authenticate(make_user())
    for path in [TOKEN, "/api/v1/markets/", "/api/v1/markets/any/trades/", "/api/v1/markets/any/resolution/"]:
        response = client.post(path, {"padding": "x" * 2000}, format="json")
        assert_api_error(response, 413, "payload_too_large")


def test_a_body_that_grows_past_the_limit_while_read_is_a_413():
    """Without a Content-Length to refuse it by, Django stops reading at the limit; the handler answers 413."""
    response = api_exception_handler(RequestDataTooBig("too big"), {})
    assert response.status_code == 413
    assert response.data["error"]["code"] == "payload_too_large"


def test_an_oversized_form_on_the_website_is_a_413_page(client):
    response = client.post("/accounts/login/", {"username": "x" * 3_000_000, "password": "y"})
    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/html")
    assert "The request body is too large" in response.content.decode()


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_json_is_a_400_in_the_api_shape(depth):
    body = "[" * depth + "]" * depth
    error = assert_api_error(APIClient().post(TOKEN, body, content_type="application/json"), 400, "parse_error")
    assert "nested deeper than 32 levels" in error["message"]


def test_deep_objects_are_refused_too_but_brackets_inside_strings_do_not_count():
    deep = '{"a":' * 40 + "1" + "}" * 40
    assert_api_error(APIClient().post(TOKEN, deep, content_type="application/json"), 400, "parse_error")
    harmless = json.dumps({"username": "[" * 140, "password": "{" * 100})
    assert_api_error(APIClient().post(TOKEN, harmless, content_type="application/json"), 401, "invalid_credentials")


def test_depth_counting():
    assert not json_depth_exceeds("[[[]]]", 3)
    assert json_depth_exceeds("[[[[]]]]", 3)
    assert not json_depth_exceeds('["[[[[", {"a": "{{{{"}]', 3)
    assert not json_depth_exceeds('"\\"[[[["', 1)
