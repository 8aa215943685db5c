"""Cached reads answered by the WSGI application before Django handles them (config/core/fast_reads.py): the same
answer as Django's, the throttle counted once, and everything they do not cover left to Django."""

import logging
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.handlers.wsgi import WSGIHandler, WSGIRequest
from django.utils import timezone

from config.core.wsgi import _api_handler, forecastle_wsgi_application
from markets.models import Market
from markets.services import market_close, trade_execute
from markets.trade_request import TradeRequest
from tests.test_api_middleware_stack import call

pytestmark = pytest.mark.django_db

DETAIL = "/api/v1/markets/fast/"
HISTORY = "/api/v1/markets/fast/history/"
LIST = "/api/v1/markets/"
QUOTE = "/api/v1/markets/fast/quote/"


@pytest.fixture
def market(make_market, make_user):
    market = make_market(
        slug="fast",
        question="Answered before Django?",
        kind=Market.Kind.BINARY,
        liquidity=100,
        closes_at=timezone.now() + timedelta(days=2),
    )
    trade_execute(user=make_user(), market=market, request=TradeRequest(outcome="YES", side="buy", shares=Decimal(4)))
    return market


def refuse(self, environ, start_response):
    raise AssertionError(f"Django handled {environ['PATH_INFO']}")


def without_request_id(answer):
    return {name: value for name, value in answer["headers"].items() if name != "X-Request-ID"}


@pytest.mark.parametrize(
    ("path", "query"),
    [
        (DETAIL, ""),
        (LIST, ""),
        (LIST, "status=open&page_size=5"),
        (HISTORY, ""),
        (QUOTE, "outcome=YES&side=buy&shares=10"),
        (QUOTE, "outcome=NO&side=sell&amount=1.5"),
    ],
)
@pytest.mark.parametrize("accept_encoding", [None, "gzip, deflate"])
def test_a_cached_read_is_answered_as_django_answers_it(market, monkeypatch, path, query, accept_encoding):
    django_handler = _api_handler()
    application = forecastle_wsgi_application()
    # These bodies are too small to compress (tests/markets/test_cached_read_encodings.py has larger ones): a
    # request that takes gzip gets identity too, and either way the answer says it varies with Accept-Encoding.
    coding = {"HTTP_ACCEPT_ENCODING": accept_encoding} if accept_encoding else {}
    # Django's answer fills the cache; the same request is then answered from it, with the same bytes and headers.
    expected = call(django_handler, path, QUERY_STRING=query, **coding)
    assert expected["status"] == 200
    with monkeypatch.context() as patch:
        patch.setattr(WSGIHandler, "__call__", refuse)
        fast = call(application, path, QUERY_STRING=query, **coding)
        revalidated = call(
            application, path, QUERY_STRING=query, HTTP_IF_NONE_MATCH=expected["headers"]["ETag"], **coding
        )
    assert fast["status"] == 200
    assert fast["body"] == expected["body"]
    assert without_request_id(fast) == without_request_id(expected)
    assert fast["headers"]["X-Request-ID"] != expected["headers"]["X-Request-ID"]
    django_revalidated = call(
        django_handler, path, QUERY_STRING=query, HTTP_IF_NONE_MATCH=expected["headers"]["ETag"], **coding
    )
    assert (revalidated["status"], revalidated["body"]) == (304, b"")
    assert without_request_id(revalidated) == without_request_id(django_revalidated)


def test_a_fast_read_logs_and_echoes_its_request_id(market, monkeypatch, caplog):
    call(_api_handler(), DETAIL)
    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="forecastle.request"):
        answer = call(forecastle_wsgi_application(), DETAIL, HTTP_X_REQUEST_ID="trace-42")
    assert answer["headers"]["X-Request-ID"] == "trace-42"
    (record,) = [record for record in caplog.records if record.name == "forecastle.request"]
    assert (record.route, record.status, record.request_id) == ("/api/v1/markets/<slug:slug>/", 200, "trace-42")


def test_the_limit_is_counted_once_per_request_hit_or_miss(market, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "3/min"},
    }
    application = forecastle_wsgi_application()
    # A miss (nothing cached yet: Django answers, without counting again), then two hits: three requests.
    statuses = [call(application, DETAIL, REMOTE_ADDR="10.0.0.7")["status"] for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = call(application, DETAIL, REMOTE_ADDR="10.0.0.7")
    assert refused["status"] == 429
    assert refused["headers"]["Retry-After"]
    assert b'"code":"throttled"' in refused["body"].replace(b" ", b"")
    # Another address has its own allowance.
    assert call(application, DETAIL, REMOTE_ADDR="10.0.0.8")["status"] == 200


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        (DETAIL, {"HTTP_COOKIE": "sessionid=a"}),
        (DETAIL, {"HTTP_AUTHORIZATION": "Token fc_unknown"}),
        (DETAIL, {"REQUEST_METHOD": "HEAD"}),
        # The market as it stood at a moment is not the current snapshot.
        (DETAIL, {"QUERY_STRING": "as_of=2026-01-01T00:00:00Z"}),
        (HISTORY, {"QUERY_STRING": "interval=1h"}),
        (QUOTE, {"QUERY_STRING": "outcome=YES&side=buy&shares=10&as_of=2026-01-01T00:00:00Z"}),
        (QUOTE, {"QUERY_STRING": "outcome=YES&side=buy"}),
    ],
)
def test_django_answers_what_a_fast_read_does_not_cover(market, monkeypatch, path, headers):
    call(_api_handler(), DETAIL)
    call(_api_handler(), HISTORY, QUERY_STRING="interval=1h")
    handled = []
    answer = WSGIHandler.__call__

    def recording(self, environ, start_response):
        handled.append(environ["PATH_INFO"])
        return answer(self, environ, start_response)

    monkeypatch.setattr(WSGIHandler, "__call__", recording)
    call(forecastle_wsgi_application(), path, **headers)
    assert handled == [path]


def test_a_cached_quote_is_answered_without_building_its_query_dict(market, monkeypatch):
    """Whether a quote asks `as_of` is remembered per query string, as its parse is: building request.GET on every
    read was the largest cost a quote had that a market's detail does not (docs/benchmarks.md, item 24)."""
    application = forecastle_wsgi_application()
    query = "outcome=YES&side=buy&shares=10"
    first = call(application, QUOTE, QUERY_STRING=query)  # fills the cache and the memos

    def built(request):
        raise AssertionError("request.GET built for a cached quote")

    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    monkeypatch.setattr(WSGIRequest, "GET", property(built))
    again = call(application, QUOTE, QUERY_STRING=query)
    assert (again["status"], again["body"]) == (200, first["body"])


def test_a_redirect_to_https_is_left_to_django(market, settings, monkeypatch):
    call(_api_handler(), DETAIL)
    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    settings.SECURE_SSL_REDIRECT = True
    with pytest.raises(AssertionError, match="Django handled"):
        call(forecastle_wsgi_application(), DETAIL)
    answer = call(forecastle_wsgi_application(), DETAIL, **{"wsgi.url_scheme": "https"})
    assert answer["status"] == 200
    assert "Strict-Transport-Security" in answer["headers"] or not settings.SECURE_HSTS_SECONDS


def test_a_quote_of_a_closed_market_is_left_to_django_and_counted_once(
    market, settings, django_capture_on_commit_callbacks
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "anon_read": "2/min"},
    }
    application = forecastle_wsgi_application()
    query = "outcome=YES&side=buy&shares=1"
    assert call(application, QUOTE, QUERY_STRING=query)["status"] == 200
    with django_capture_on_commit_callbacks(execute=True):
        market_close(market=market)
    refused = call(application, QUOTE, QUERY_STRING=query)
    assert refused["status"] == 422
    assert b"closed" in refused["body"]
    assert call(application, QUOTE, QUERY_STRING=query)["status"] == 429
