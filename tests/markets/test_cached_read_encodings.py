"""Cached price reads in gzip (config/core/encodings.py): compressed once when rendered, sent to a request whose
Accept-Encoding admits gzip, with an ETag of its own; identity otherwise; `Vary: Accept-Encoding` always. Each read is
requested from the deployed WSGI application twice: a miss (Django renders and stores it) and a hit (the stored bytes,
answered before Django, config/core/fast_reads.py), and also through Django's test client."""

import gzip
from datetime import timedelta
from decimal import Decimal

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.utils import timezone
from rest_framework.test import APIClient

from config.core.encodings import GZIP_MIN_BYTES, accepts_gzip, etag_base, gzip_etag, gzipped
from config.core.wsgi import _api_handler, forecastle_wsgi_application
from markets.services import trade_execute
from markets.trade_request import TradeRequest
from tests.test_api_middleware_stack import call
from tests.test_fast_reads import refuse, without_request_id

pytestmark = pytest.mark.django_db

SLUG = "coded"
DETAIL = f"/api/v1/markets/{SLUG}/"
LIST = "/api/v1/markets/"
HISTORY = f"/api/v1/markets/{SLUG}/history/"
QUOTE = f"/api/v1/markets/{SLUG}/quote/"
# Every cached read, with a query the fast path answers and one only Django answers; each body is above the
# threshold on the fixture's data.
READS = [
    (DETAIL, ""),
    (LIST, ""),
    (LIST, "status=open&page_size=5"),
    (HISTORY, ""),
    (HISTORY, "interval=raw"),
    (QUOTE, "outcome=O3&side=buy&amount=10"),
]
GZIP = "gzip, deflate, br"
# The reads config.core.fast_reads answers from the stored bytes (the others are answered by Django alone).
FAST_READS = [(path, query) for path, query in READS if path in (LIST, QUOTE) or not query]


@pytest.fixture
def market(make_market, make_user):
    """Twenty outcomes, so that even a quote's body is above GZIP_MIN_BYTES, and a few trades for a history."""
    market = make_market(
        SLUG,
        question="Is every cached read sent compressed to those who take gzip?",
        description="A market whose reads are large enough to compress. " * 20,
        outcomes=20,
        closes_at=timezone.now() + timedelta(days=3),
    )
    trader = make_user()
    for code in ("O1", "O2", "O3", "O1"):
        trade_execute(user=trader, market=market, request=TradeRequest(outcome=code, side="buy", amount=Decimal(5)))
    return market


def get(path, query="", **headers):
    return call(forecastle_wsgi_application(), path, QUERY_STRING=query, **headers)


def test_accept_encoding_is_parsed_with_its_q_values():
    admitted = ["gzip", "GZIP", "gzip, deflate, br", "br;q=1.0, gzip;q=0.8, *;q=0.1", "x-gzip", "*", "gzip;q=0.001"]
    refused = [
        None,
        "",
        "identity",
        "br, deflate",
        "gzip;q=0",
        "gzip; q=0.000",
        "gzip;q=0, *",
        "*;q=0",
        "deflate, *;q=0",
        "gzip;q=2",
        "gzip;q=abc",
        "identity, *;q=0",
    ]
    assert [value for value in admitted if not accepts_gzip(value)] == []
    assert [value for value in refused if accepts_gzip(value)] == []


def test_the_gzip_etag_and_the_threshold():
    assert gzip_etag('"abc"') == '"abc-gz"'
    assert etag_base('"abc-gz"') == etag_base('"abc"') == '"abc"'
    assert gzipped(b"x" * (GZIP_MIN_BYTES - 1)) is None
    body = b'{"a": 1}' * GZIP_MIN_BYTES
    compressed = gzipped(body)
    assert compressed is not None
    assert gzip.decompress(compressed) == body
    assert gzipped(body) == compressed  # the same bytes each time: no timestamp in the header


@pytest.mark.parametrize(("path", "query"), READS)
def test_gzip_is_sent_to_who_takes_it_and_decodes_to_the_identity_bytes(market, path, query):
    # A miss (Django renders the body and stores both codings, then sends gzip), then hits of either coding.
    rendered = get(path, query, HTTP_ACCEPT_ENCODING=GZIP)
    plain = get(path, query)
    stored = get(path, query, HTTP_ACCEPT_ENCODING=GZIP)
    assert plain["status"] == 200
    assert len(plain["body"]) >= GZIP_MIN_BYTES
    assert "Content-Encoding" not in plain["headers"]
    assert "Accept-Encoding" in plain["headers"]["Vary"]
    for coded in (rendered, stored):
        assert coded["status"] == 200
        assert coded["headers"]["Content-Encoding"] == "gzip"
        assert "Accept-Encoding" in coded["headers"]["Vary"]
        assert int(coded["headers"]["Content-Length"]) == len(coded["body"]) < len(plain["body"])
        assert gzip.decompress(coded["body"]) == plain["body"]
        assert coded["headers"]["ETag"] == gzip_etag(plain["headers"]["ETag"])
        assert coded["headers"]["Last-Modified"] == plain["headers"]["Last-Modified"]
    assert stored["body"] == rendered["body"]


@pytest.mark.parametrize(("path", "query"), FAST_READS)
def test_the_stored_gzip_bytes_are_answered_before_django_as_django_answers_them(market, monkeypatch, path, query):
    expected = call(_api_handler(), path, QUERY_STRING=query, HTTP_ACCEPT_ENCODING=GZIP)
    monkeypatch.setattr(WSGIHandler, "__call__", refuse)
    fast = get(path, query, HTTP_ACCEPT_ENCODING=GZIP)
    assert expected["headers"]["Content-Encoding"] == "gzip"
    assert fast["body"] == expected["body"]
    assert without_request_id(fast) == without_request_id(expected)
    revalidated = get(path, query, HTTP_ACCEPT_ENCODING=GZIP, HTTP_IF_NONE_MATCH=expected["headers"]["ETag"])
    monkeypatch.undo()
    django_revalidated = call(
        _api_handler(), path, QUERY_STRING=query, HTTP_ACCEPT_ENCODING=GZIP, HTTP_IF_NONE_MATCH=fast["headers"]["ETag"]
    )
    assert revalidated["status"] == django_revalidated["status"] == 304
    assert without_request_id(revalidated) == without_request_id(django_revalidated)


@pytest.mark.parametrize(("path", "query"), READS)
@pytest.mark.parametrize("accept_encoding", ["gzip;q=0", "gzip;q=0, *", "br", "identity", ""])
def test_a_request_that_does_not_take_gzip_gets_identity(market, path, query, accept_encoding):
    plain = get(path, query)
    for _time in range(2):  # a miss, then a hit
        answer = get(path, query, HTTP_ACCEPT_ENCODING=accept_encoding)
        assert answer["status"] == 200
        assert "Content-Encoding" not in answer["headers"]
        assert "Accept-Encoding" in answer["headers"]["Vary"]
        assert (answer["body"], answer["headers"]["ETag"]) == (plain["body"], plain["headers"]["ETag"])


@pytest.mark.parametrize(("path", "query"), READS)
def test_either_etag_revalidates_either_coding(market, path, query):
    identity_tag = get(path, query)["headers"]["ETag"]
    gzip_tag = get(path, query, HTTP_ACCEPT_ENCODING=GZIP)["headers"]["ETag"]
    assert gzip_tag == gzip_etag(identity_tag)
    for accept_encoding, sent_tag in (("", identity_tag), (GZIP, gzip_tag)):
        for tag in (identity_tag, gzip_tag, f"W/{gzip_tag}", f'"other", {identity_tag}', f'"other", {gzip_tag}'):
            answer = get(path, query, HTTP_ACCEPT_ENCODING=accept_encoding, HTTP_IF_NONE_MATCH=tag)
            assert (answer["status"], answer["body"]) == (304, b"")
            assert answer["headers"]["ETag"] == sent_tag
            assert "Accept-Encoding" in answer["headers"]["Vary"]
            assert "Content-Encoding" not in answer["headers"]
        assert get(path, query, HTTP_ACCEPT_ENCODING=accept_encoding, HTTP_IF_NONE_MATCH='"other"')["status"] == 200


@pytest.mark.parametrize(("path", "query"), READS)
def test_a_trade_makes_both_codings_new(market, make_user, django_capture_on_commit_callbacks, path, query):
    before = {coding: get(path, query, HTTP_ACCEPT_ENCODING=coding) for coding in ("", GZIP)}
    with django_capture_on_commit_callbacks(execute=True):
        trade_execute(
            user=make_user(), market=market, request=TradeRequest(outcome="O3", side="buy", amount=Decimal(20))
        )
    after = {coding: get(path, query, HTTP_ACCEPT_ENCODING=coding) for coding in ("", GZIP)}
    assert after[""]["body"] != before[""]["body"]
    assert gzip.decompress(after[GZIP]["body"]) == after[""]["body"]
    assert after[GZIP]["headers"]["ETag"] == gzip_etag(after[""]["headers"]["ETag"])
    for coding in ("", GZIP):
        for old in before.values():
            answer = get(path, query, HTTP_ACCEPT_ENCODING=coding, HTTP_IF_NONE_MATCH=old["headers"]["ETag"])
            assert answer["status"] == 200


@pytest.mark.parametrize("path", [DETAIL, LIST, QUOTE])
def test_an_as_of_read_is_sent_in_gzip_too(market, path):
    moment = timezone.now().isoformat()  # after the fixture's trades
    query = {"as_of": moment, **({"outcome": "O3", "side": "buy", "amount": "10"} if path == QUOTE else {})}
    client = APIClient()
    for _time in range(2):  # rendered, then from the cache
        plain = client.get(path, query)
        coded = client.get(path, query, HTTP_ACCEPT_ENCODING=GZIP)
        assert (plain.status_code, coded.status_code) == (200, 200)
        assert coded["Content-Encoding"] == "gzip"
        assert gzip.decompress(coded.content) == plain.content
        assert coded["ETag"] == gzip_etag(plain["ETag"])
        assert "Content-Encoding" not in plain
        for answer in (plain, coded):
            assert "Accept-Encoding" in answer["Vary"]
        revalidated = client.get(path, query, HTTP_ACCEPT_ENCODING=GZIP, HTTP_IF_NONE_MATCH=plain["ETag"])
        assert revalidated.status_code == 304


def test_a_small_body_is_sent_as_it_is(make_market):
    make_market("small")
    answer = get("/api/v1/markets/small/quote/", "outcome=YES&side=buy&amount=1", HTTP_ACCEPT_ENCODING=GZIP)
    assert answer["status"] == 200
    assert len(answer["body"]) < GZIP_MIN_BYTES
    assert "Content-Encoding" not in answer["headers"]
    assert "Accept-Encoding" in answer["headers"]["Vary"]


def test_httpx_as_the_python_client_uses_it_gets_gzip_and_reads_the_json(market):
    """httpx (clients/python's HTTP library) asks for gzip by itself and decodes the answer to the identity bytes."""
    identity = get(HISTORY)["body"]  # also fills the cache: httpx's requests are hits
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        transport = httpx.WSGITransport(app=forecastle_wsgi_application())
        with httpx.Client(transport=transport, base_url="http://127.0.0.1") as client:
            answer = client.get(HISTORY)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
    assert "gzip" in answer.request.headers["Accept-Encoding"]
    assert answer.headers["Content-Encoding"] == "gzip"
    assert answer.content == identity
    assert answer.json()["series"][0]["code"] == "O0"
