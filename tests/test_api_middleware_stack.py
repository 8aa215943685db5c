"""API requests without a session take the shorter middleware stack (config/core/wsgi.py) and still answer
with every header and guard of the full one; everything else takes the full stack."""

import io
from datetime import timedelta

import pytest
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone

from config.core.wsgi import forecastle_wsgi_application, uses_api_stack
from markets.models import Market


@pytest.mark.parametrize(
    ("environ", "api_stack"),
    [
        ({"PATH_INFO": "/api/v1/markets/"}, True),
        ({"PATH_INFO": "/api/v1/markets/", "HTTP_AUTHORIZATION": "Token fc_x"}, True),
        ({"PATH_INFO": "/api/v1/markets/", "HTTP_AUTHORIZATION": "Token fc_x", "HTTP_COOKIE": "sessionid=a"}, True),
        ({"PATH_INFO": "/api/v1/markets/", "HTTP_COOKIE": "sessionid=a"}, False),
        ({"PATH_INFO": "/api/v1/auth/token/"}, False),
        ({"PATH_INFO": "/markets/"}, False),
        ({"PATH_INFO": "/admin/"}, False),
    ],
)
def test_which_requests_take_the_api_stack(environ, api_stack):
    assert uses_api_stack(environ) is api_stack


def test_the_api_stack_leaves_out_only_the_websites_middleware(settings):
    assert "django.middleware.security.SecurityMiddleware" in settings.API_MIDDLEWARE
    assert "config.core.request_context.RequestContextMiddleware" in settings.API_MIDDLEWARE
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in settings.API_MIDDLEWARE
    assert set(settings.API_MIDDLEWARE) | settings.API_SKIPPED_MIDDLEWARE == set(settings.MIDDLEWARE)


def call(application, path, **headers):
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "80",
        "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
        **headers,
    }
    answer: dict[str, object] = {}

    def start_response(status, response_headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(response_headers)

    # As Django's test client does: the test's transaction must survive the request's end.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        result = application(environ, start_response)
        answer["body"] = b"".join(result)
        if hasattr(result, "close"):  # as WSGI servers do: the answer of config.core.fast_reads is a list
            result.close()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    return answer


@pytest.mark.django_db
def test_an_api_read_through_the_short_stack_keeps_its_headers(make_market):
    make_market(
        slug="short-stack",
        question="Shorter?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=1),
    )
    application = forecastle_wsgi_application()
    answer = call(application, "/api/v1/markets/short-stack/")
    assert answer["status"] == 200, answer
    headers = answer["headers"]
    assert isinstance(headers, dict)
    assert headers["X-Request-ID"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Security-Policy" in headers
    assert headers["X-Frame-Options"] == "DENY"
    assert "Set-Cookie" not in headers
    assert call(application, "/api/v1/markets/short-stack/", HTTP_HOST="evil.example")["status"] == 400


@pytest.mark.django_db
def test_a_page_still_takes_the_full_stack():
    answer = call(forecastle_wsgi_application(), "/accounts/login/")
    assert answer["status"] == 200
    headers = answer["headers"]
    assert isinstance(headers, dict)
    assert "csrftoken=" in str(headers.get("Set-Cookie", ""))
