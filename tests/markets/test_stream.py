"""The live stream (issue 14): a real uvicorn serving config.stream_asgi, trades through the API, and what
a client of the stream receives. The services publish after commit through Redis; nothing is mocked."""

import json
from decimal import Decimal
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction
from rest_framework.test import APIClient

from markets.models import Market, PricePoint, Trade
from markets.services import (
    challenge_create,
    challenge_decide,
    market_close,
    market_halt,
    market_open,
    market_resolve,
    market_resume,
    market_settle,
    proposal_create,
    proposals_finalize_due,
    trade_execute,
)
from markets.services.orders import OrderRequest, order_place
from markets.stream.events import EventId
from tests.celery_worker import wait_for
from tests.factories import trade_request
from tests.redis_namespace import namespace_delete
from tests.stream_server import Event, SseClient, StreamServer, stream_key, stream_server

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


@pytest.fixture(scope="module")
def module_server(django_db_setup, django_db_blocker):
    """One server for the module (starting uvicorn takes seconds), on a stream key of its own."""
    key = stream_key()
    with django_db_blocker.unblock():
        started = stream_server(key=key, env={"STREAM_CONNECTIONS_PER_ADDRESS": "3", "STREAM_HEARTBEAT_SECONDS": "1"})
        with started as running:
            yield running
    namespace_delete(settings.REDIS_URL, key)


@pytest.fixture
def server(module_server, settings):
    """The module's server, with the services of this test publishing where it reads. Every stream the test
    opened is closed after it, and its slot given back, so the next test starts with all of them free."""
    settings.FORECASTLE_STREAM_KEY = module_server.key
    yield module_server
    module_server.disconnect_all()


@pytest.fixture
def market(make_market):
    return make_market("stream-binary")


@pytest.fixture
def api(make_user):
    trader = make_user("streamer")
    client = APIClient()
    client.force_authenticate(trader)
    return client


def buy(api: APIClient, slug: str, amount: str = "10", outcome: str = "YES") -> dict:
    response = api.post(
        f"/api/v1/markets/{slug}/trades/", {"outcome": outcome, "side": "buy", "amount": amount}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def subscribed(server: StreamServer, path: str, **kwargs) -> SseClient:
    client = server.connect(path, **kwargs)
    assert client.status == 200, client.response.read()
    assert client.response.getheader("Content-Type") == "text/event-stream; charset=utf-8"
    return client


def test_a_trade_through_the_api_reaches_the_stream_as_a_trade_and_a_price_event(server, market, api):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    traded = buy(api, market.slug)

    trade_event, price_event = stream.next_event(), stream.next_event()
    assert trade_event.event == "trade"
    # The public fields, as the market's public trade list shows them; no key, balance or position. It was placed,
    # not the fill of a resting order.
    public = api.get(f"/api/v1/markets/{market.slug}/trades/").json()["results"][0]
    assert trade_event.data == {**public, "fill": False}
    assert trade_event.data["id"] == traded["trade"]["id"]
    assert price_event.event == "price"
    assert price_event.data["market"] == market.slug
    assert price_event.data["probabilities"] == pytest.approx(traded["trade"]["probabilities_after"])
    assert price_event.data["probabilities"]["YES"] > 0.5
    assert price_event.data["volume"] == "10.000000"
    detail = api.get(f"/api/v1/markets/{market.slug}/").json()
    assert {o["code"]: o["probability"] for o in detail["outcomes"]} == price_event.data["probabilities"]
    # Every event carries an id, in the order Redis gave them.
    ids = [EventId.parse(event.id or "") for event in (trade_event, price_event)]
    assert ids[0] is not None
    assert ids[1] is not None
    assert ids[0] < ids[1]
    assert stream.retry == 2000
    stream.close()


def resting_buy(user, market: Market, limit: str, size: str = "100") -> int:
    """A buy order of YES that rests (the price is above its limit): no event."""
    placed = order_place(
        user=user,
        market=market,
        request=OrderRequest(outcome="YES", side="buy", limit=Decimal(limit), size=Decimal(size)),
    )
    assert placed.trade_id is None
    return placed.order.pk


def until_price(stream: SseClient) -> list[Event]:
    """The events up to the next price event (a change's trades come before its price)."""
    return stream.events_until(lambda event: event.event == "price", limit=10)


def public_trades(api: APIClient, slug: str) -> dict[int, dict]:
    return {trade["id"]: trade for trade in api.get(f"/api/v1/markets/{slug}/trades/").json()["results"]}


def test_a_trade_that_fills_a_resting_order_sends_both_trades_then_one_price(server, market, api, make_user):
    resting = make_user("resting")
    order_id = resting_buy(resting, market, limit="0.45")
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    # Buying NO takes YES below 0.45: the resting buy fills and takes it back up to its limit.
    traded = buy(api, market.slug, amount="60", outcome="NO")

    events = until_price(stream)
    assert [event.event for event in events] == ["trade", "trade", "price"]
    placed, fill, price = (event.data for event in events)
    filled = Trade.objects.get(order_id=order_id)
    public = public_trades(api, market.slug)
    # The trade placed, then the fill, each as the public trade list shows it and marked as what it was.
    assert placed == {**public[traded["trade"]["id"]], "fill": False}
    assert fill == {**public[filled.pk], "fill": True}
    assert (fill["username"], fill["outcome"], fill["side"]) == ("resting", "YES", "buy")
    assert fill["probabilities_before"] == placed["probabilities_after"]
    assert fill["probabilities_after"]["YES"] == pytest.approx(0.45, abs=1e-6)
    # One price event, for the state after the fill: the fill's price point, what the market now reads.
    assert price["version"] == PricePoint.objects.get(trade=filled).pk
    assert price["probabilities"] == fill["probabilities_after"]
    detail = api.get(f"/api/v1/markets/{market.slug}/").json()
    assert {o["code"]: o["probability"] for o in detail["outcomes"]} == price["probabilities"]
    assert price["volume"] == detail["volume"]
    stream.close()

    # A client that saw only the placed trade is sent the fill and the price when it reconnects.
    again = subscribed(server, f"/api/v1/stream/?markets={market.slug}", last_event_id=events[0].id)
    replayed = [again.next_event() for _ in range(2)]
    assert [(event.id, event.data) for event in replayed] == [(event.id, event.data) for event in events[1:]]
    again.close()


def test_an_order_placed_marketable_sends_its_trade_then_its_price(server, market, api, make_user):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    response = api.post(
        f"/api/v1/markets/{market.slug}/orders/",
        {"outcome": "YES", "side": "buy", "limit": "0.6", "size": "50"},
        format="json",
    )
    assert response.status_code == 201, response.content
    trade_id = response.json()["trade_id"]
    assert trade_id is not None

    events = until_price(stream)
    assert [event.event for event in events] == ["trade", "price"]
    trade_event, price_event = events
    assert trade_event.data == {**public_trades(api, market.slug)[trade_id], "fill": False}
    assert trade_event.data["username"] == "streamer"
    assert price_event.data["version"] == PricePoint.objects.get(trade_id=trade_id).pk
    assert price_event.data["probabilities"] == trade_event.data["probabilities_after"]
    assert price_event.data["probabilities"]["YES"] == pytest.approx(0.6, abs=1e-6)
    stream.close()


def test_an_order_whose_trade_fills_a_resting_order_sends_both_trades(server, market, api, make_user):
    resting = make_user("resting")
    order_id = resting_buy(resting, market, limit="0.45")
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    # A buy order of NO the price allows at once up to 0.6 (YES down to 0.4), which crosses the resting buy of
    # YES at 0.45.
    response = api.post(
        f"/api/v1/markets/{market.slug}/orders/",
        {"outcome": "NO", "side": "buy", "limit": "0.6", "size": "100"},
        format="json",
    )
    assert response.status_code == 201, response.content

    events = until_price(stream)
    assert [(event.event, event.data.get("fill")) for event in events] == [
        ("trade", False),
        ("trade", True),
        ("price", None),
    ]
    assert events[0].data["id"] == response.json()["trade_id"]
    assert events[1].data["id"] == Trade.objects.get(order_id=order_id).pk
    assert events[1].data["username"] == "resting"
    assert events[2].data["probabilities"] == events[1].data["probabilities_after"]
    stream.close()


def test_a_stream_of_one_market_skips_the_others_and_a_stream_of_all_sees_both(server, market, make_market, api):
    other = make_market("stream-other")
    one = subscribed(server, f"/api/v1/stream/?markets={other.slug}")
    every = subscribed(server, "/api/v1/stream/")
    buy(api, market.slug)
    buy(api, other.slug)
    seen_by_one = one.events_until(lambda event: event.event == "price")
    assert {event.data["market"] for event in seen_by_one} == {other.slug}
    seen_by_all = every.events_until(lambda event: event.event == "price" and event.data["market"] == other.slug)
    assert [(event.event, event.data["market"]) for event in seen_by_all] == [
        ("trade", market.slug),
        ("price", market.slug),
        ("trade", other.slug),
        ("price", other.slug),
    ]
    one.close()
    every.close()


def test_a_client_reconnecting_with_last_event_id_receives_what_it_missed(server, market, api):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    buy(api, market.slug)
    seen = stream.events_until(lambda event: event.event == "price")
    stream.close()

    missed = [buy(api, market.slug, amount) for amount in ("5", "7")]

    again = subscribed(server, f"/api/v1/stream/?markets={market.slug}", last_event_id=seen[-1].id)
    replayed = [again.next_event() for _ in range(4)]
    assert [event.event for event in replayed] == ["trade", "price", "trade", "price"]
    assert [replayed[0].data["id"], replayed[2].data["id"]] == [trade["trade"]["id"] for trade in missed]
    first_replayed, last_seen = EventId.parse(replayed[0].id or ""), EventId.parse(seen[-1].id or "")
    assert first_replayed is not None
    assert last_seen is not None
    assert first_replayed > last_seen
    # And then the live events, with nothing repeated.
    live = buy(api, market.slug, "3")
    assert again.next_event().data["id"] == live["trade"]["id"]
    again.close()


def test_a_client_whose_missed_events_were_trimmed_is_told_to_reset(settings, market, make_user):
    settings.FORECASTLE_STREAM_MAX_EVENTS = 4
    key = stream_key()
    settings.FORECASTLE_STREAM_KEY = key
    trader = make_user()
    with stream_server(key=key) as server:
        trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="1"))
        first = subscribed(server, "/api/v1/stream/")
        for _ in range(3):
            trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="1"))
        first.close()
        client: Any = redis.Redis.from_url(settings.REDIS_URL)
        oldest = client.xrange(key, count=1)[0][0].decode()
        stale = subscribed(server, "/api/v1/stream/", last_event_id="1-0")
        reset = stale.next_event()
        assert reset.event == "reset"
        assert reset.id is None
        assert stale.next_event().id == oldest
        stale.close()
    namespace_delete(settings.REDIS_URL, key)


class RolledBack(Exception):
    def __init__(self, trade: Trade) -> None:
        super().__init__("the caller's transaction fails after the trade")
        self.trade = trade


def test_a_rolled_back_trade_publishes_nothing(server, market, make_user, api):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    trader = make_user()

    def trade_then_fail() -> Trade:
        with transaction.atomic():
            traded = trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="50"))
            raise RolledBack(traded.trade)

    with pytest.raises(RolledBack) as rolled_back:
        trade_then_fail()
    rolled_back_trade = rolled_back.value.trade
    assert not Trade.objects.filter(pk=rolled_back_trade.pk).exists()
    # A trade the service refuses (over the bound) rolls back too.
    refused = api.post(
        f"/api/v1/markets/{market.slug}/trades/",
        {"outcome": "YES", "side": "buy", "shares": "10", "max_cost": "0.01"},
        format="json",
    )
    assert refused.status_code == 409, refused.content
    committed = buy(api, market.slug, "2")

    first = stream.next_event()
    assert first.event == "trade"
    assert first.data["id"] == committed["trade"]["id"]
    assert stream.next_event().data["probabilities"] == pytest.approx(committed["trade"]["probabilities_after"])
    client: Any = redis.Redis.from_url(settings.REDIS_URL)
    stored = client.xrange(settings.FORECASTLE_STREAM_KEY)
    trade_ids = [json.loads(fields[b"data"])["id"] for _id, fields in stored if fields[b"event"] == b"trade"]
    assert committed["trade"]["id"] in trade_ids
    assert rolled_back_trade.pk not in trade_ids
    stream.close()


def test_status_events_follow_opening_and_closing(server, make_market, api):
    draft = make_market("stream-draft", open_now=False)
    stream = subscribed(server, "/api/v1/stream/")
    market_open(market=draft)
    # Opening gives the market its first prices, then its status.
    first_price, opened = stream.next_event(), stream.next_event()
    assert (first_price.event, first_price.data["probabilities"]) == ("price", {"YES": 0.5, "NO": 0.5})
    assert (opened.event, opened.data["market"], opened.data["status"]) == ("status", draft.slug, "open")
    market_close(market=Market.objects.get(pk=draft.pk))
    closed = stream.next_event()
    assert (closed.event, closed.data["market"], closed.data["status"]) == ("status", draft.slug, "closed")
    stream.close()


def test_halting_and_resuming_are_status_events(server, market, make_user):
    staff = make_user("stream-halter", is_staff=True)
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    market_halt(market=market, user=staff, reason="Checking a report.")
    halted = stream.next_event()
    assert (halted.event, halted.data["status"]) == ("status", "halted")
    market_resume(market=Market.objects.get(pk=market.pk), user=staff, reason="All clear.")
    resumed = stream.next_event()
    assert (resumed.event, resumed.data["status"]) == ("status", "open")
    stream.close()


def test_status_events_follow_resolution_and_settlement(server, market, make_user):
    staff = make_user("stream-staff", is_staff=True)
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="It happened.")
    # One transaction closes the open market and records its resolution: the stream states where it ended.
    resolving = stream.next_event()
    assert (resolving.event, resolving.data["status"]) == ("status", "resolving")
    market_settle(market_id=market.pk)
    resolved = stream.next_event()
    assert (resolved.event, resolved.data["status"]) == ("status", "resolved")
    stream.close()


def test_a_proposal_is_a_proposed_status_until_it_is_set_aside_or_final(server, market, make_user, settings):
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("5")
    staff = make_user("stream-proposer", is_staff=True)
    trader = make_user("stream-challenger")
    trade_execute(user=trader, market=market, request=trade_request("YES", "buy", amount="10"))
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")

    def propose():
        return proposal_create(
            market=Market.objects.get(pk=market.pk),
            user=staff,
            kind="outcome",
            outcome_code="YES",
            reason="It happened.",
            source_url="https://example.org/answer",
            known_at=None,
        )

    proposal = propose()
    # One transaction closes the open market and records the proposal: the stream states where it ended.
    proposed = stream.next_event()
    assert (proposed.event, proposed.data["market"], proposed.data["status"]) == ("status", market.slug, "proposed")
    # A challenge leaves it proposed (nothing to publish); upholding it sets the proposal aside: closed again.
    challenge_create(proposal=proposal, user=trader, reason="Not yet.")
    challenge_decide(proposal=proposal, user=staff, decision="uphold", note="Too early.")
    closed = stream.next_event()
    assert (closed.event, closed.data["status"]) == ("status", "closed")
    # Proposed again; the window ends unchallenged and the proposal becomes the resolution.
    proposal = propose()
    assert stream.next_event().data["status"] == "proposed"
    proposals_finalize_due(now=proposal.challenge_until)
    resolving = stream.next_event()
    assert (resolving.event, resolving.data["status"]) == ("status", "resolving")
    stream.close()


def test_a_quiet_stream_sends_heartbeat_comments(server, market):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    lines = [stream.response.readline() for _ in range(4)]
    # The reconnection delay, then (no event happening) a comment every STREAM_HEARTBEAT_SECONDS.
    assert lines == [b"retry: 2000\n", b"\n", b": heartbeat\n", b"\n"]
    stream.close()


def test_waiting_for_an_event_that_never_comes_fails_despite_the_heartbeats(server, market):
    """The test client's own guard: heartbeats keep the socket busy, so only an overall deadline ends the wait."""
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    with pytest.raises(TimeoutError, match="no event within 3s"):
        stream.next_event(timeout=3)
    assert "heartbeat" in stream.comments
    stream.close()


def test_more_streams_than_an_address_may_open_is_a_429_and_a_closed_one_frees_its_slot(settings, market):
    key = stream_key()
    settings.FORECASTLE_STREAM_KEY = key
    with stream_server(key=key, env={"STREAM_CONNECTIONS_PER_ADDRESS": "2"}) as server:
        open_streams = [subscribed(server, "/api/v1/stream/") for _ in range(2)]
        refused = server.connect("/api/v1/stream/")
        assert refused.status == 429
        assert refused.response.getheader("Retry-After")
        assert refused.json()["error"]["code"] == "throttled"
        refused.close()
        open_streams.pop().close()
        # The server sees the disconnect and gives the slot back.
        reopened: list[SseClient] = []

        def reopen() -> bool:
            attempt = server.connect("/api/v1/stream/")
            reopened.append(attempt)
            return attempt.status == 200

        wait_for(reopen, timeout=20, what="the closed stream's slot to be freed")
        for stream in [*reopened, *open_streams]:
            stream.close()
    namespace_delete(settings.REDIS_URL, key)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("markets=no-such-market", "No market 'no-such-market'."),
        ("markets=stream-binary,no-such-market", "No market 'no-such-market'."),
        ("markets=bad%20slug", "Each market is a slug"),
        ("markets=%3Cscript%3E", "Each market is a slug"),
        ("markets=", "Each market is a slug"),
        ("markets=a,,b", "Each market is a slug"),
        ("markets=" + "x" * 121, "Each market is a slug"),
        ("markets=" + ",".join(f"m{i}" for i in range(51)), "Name at most 50 markets."),
        ("market=stream-binary", "This parameter is not accepted."),
    ],
)
def test_bad_markets_are_a_400_in_the_error_shape(server, market, query, message):
    response = server.connect(f"/api/v1/stream/?{query}")
    assert response.status == 400
    body = response.json()
    assert body["error"]["code"] == "invalid"
    [(field, messages)] = body["error"]["fields"].items()
    assert field in {"markets", "market"}
    assert messages[0].startswith(message)
    response.close()


def test_a_draft_is_no_market_of_the_stream_and_a_bad_last_event_id_is_a_400(server, make_market):
    draft = make_market("stream-hidden-draft", open_now=False)
    response = server.connect(f"/api/v1/stream/?markets={draft.slug}")
    assert response.status == 400
    response.close()
    bad_id = server.connect("/api/v1/stream/", last_event_id="yesterday")
    assert bad_id.status == 400
    assert bad_id.json()["error"]["fields"] == {"Last-Event-ID": ["An event id looks like 1733000000000-0."]}
    bad_id.close()


def test_trade_events_carry_no_more_identity_than_the_public_trade_list(server, market, api):
    stream = subscribed(server, f"/api/v1/stream/?markets={market.slug}")
    buy(api, market.slug, str(Decimal("4.5")))
    trade = stream.next_event().data
    assert set(trade) == {
        "id",
        "market",
        "outcome",
        "side",
        "shares",
        "amount",
        "average_price",
        "probabilities_before",
        "probabilities_after",
        "username",
        "created_at",
        "voided_at",
        "fill",
        "order",
    }
    stream.close()
