"""`make run`'s front (tools/front.py): the API and the live stream at one address, with real gunicorn and
uvicorn behind it on Unix sockets, as tools/stack.py starts them."""

import http.client
import json

import pytest

from accounts.services import api_key_create
from tests.redis_namespace import namespace_delete
from tests.stream_server import front_stack, stream_key

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_the_api_and_the_stream_answer_at_one_address_even_on_one_kept_alive_connection(
    settings, tmp_path, make_market, make_user
):
    key = stream_key()
    settings.FORECASTLE_STREAM_KEY = key
    market = make_market("front-market")
    _stored, raw_key = api_key_create(user=make_user("front-trader"), name="front")
    with front_stack(key=key, directory=tmp_path, env={"STREAM_CONNECTIONS_PER_ADDRESS": "1"}) as stack:
        # A browser's kept-alive connection: a page's API read, then the stream on the same connection.
        connection = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=20)
        connection.request("GET", f"/api/v1/markets/{market.slug}/")
        detail = connection.getresponse()
        assert detail.status == 200
        assert json.loads(detail.read())["slug"] == market.slug
        connection.request("GET", f"/api/v1/stream/?markets={market.slug}")
        stream = connection.getresponse()
        assert stream.status == 200
        assert stream.getheader("Content-Type") == "text/event-stream; charset=utf-8"

        # A trade through the front reaches gunicorn, and its events the stream.
        trader = http.client.HTTPConnection("127.0.0.1", stack.port, timeout=20)
        trader.request(
            "POST",
            f"/api/v1/markets/{market.slug}/trades/",
            body=json.dumps({"outcome": "YES", "side": "buy", "amount": "10"}),
            headers={"Authorization": f"Token {raw_key}", "Content-Type": "application/json"},
        )
        traded = trader.getresponse()
        assert traded.status == 201, traded.read()
        trade_id = json.loads(traded.read())["trade"]["id"]
        lines: list[bytes] = []
        while not any(line.startswith(b"event: price") for line in lines):
            lines.append(stream.readline())
        assert b"event: trade\n" in lines
        assert any(line.startswith(b"data: {" + f'"id":{trade_id},'.encode()) for line in lines)

        # The stream process counts streams by the client's address, which the front passes on: this
        # client's one stream is its limit.
        second = stack.connect("/api/v1/stream/")
        assert second.status == 429
        second.close()
        connection.close()
        trader.close()
    namespace_delete(settings.REDIS_URL, key)
