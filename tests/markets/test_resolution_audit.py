"""Resolutions are in the market log (MarketEvent) with the staff controls: a direct resolution, a
re-resolution, a proposal made final, and the late trades a resolution voided, each with who, when, what and
why, on the market page and in GET /api/v1/markets/{slug}/events/."""

from datetime import timedelta
from unittest import mock

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from markets.models import MarketEvent
from markets.services import market_resolve, market_settle, proposal_create, proposals_finalize_due, trade_execute
from tests.factories import trade_request

pytestmark = pytest.mark.django_db

HOUR = timedelta(hours=1)


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


@pytest.fixture
def start():
    return timezone.now() - 10 * HOUR


def resolve(market, resolver, **arguments):
    with mock.patch("markets.services.resolution.settlement_enqueue"):
        return market_resolve(market=market, user=resolver, **arguments)


def events(market) -> list[MarketEvent]:
    return list(MarketEvent.objects.filter(market=market).order_by("created_at", "id"))


def test_a_direct_resolution_and_a_re_resolution_are_logged(make_market, resolver, start):
    market = make_market("logged", created_by=resolver, now=start)
    first = resolve(market, resolver, kind="outcome", outcome_code="YES", reason="NATO announced it.")
    market_settle(market_id=market.pk)
    second = resolve(market, resolver, kind="split", split=["0.7", "0.3"], reason="The announcement was partial.")

    resolved, re_resolved = (event for event in events(market) if event.kind != MarketEvent.Kind.CLOSED)
    assert (resolved.kind, resolved.actor, resolved.reason) == ("resolved", resolver, "NATO announced it.")
    assert resolved.created_at == first.created_at
    assert resolved.data == {
        "resolution": first.pk,
        "kind": "outcome",
        "outcome": "YES",
        "label": "Yes",
        "payouts": [{"code": "YES", "share": "1"}, {"code": "NO", "share": "0"}],
        "known_at": None,
        "via": "direct",
        "proposal": None,
        "supersedes": None,
    }
    assert re_resolved.kind == "re_resolved"
    assert re_resolved.data["supersedes"] == first.pk
    assert re_resolved.data["resolution"] == second.pk
    assert re_resolved.data["payouts"] == [{"code": "YES", "share": "0.700000"}, {"code": "NO", "share": "0.300000"}]

    page = Client().get(f"/markets/{market.slug}/").content.decode()
    assert "<strong>Re-resolved</strong>" in page
    assert "as a probability split (YES 0.700000, NO 0.300000)" in page
    assert "<strong>Resolved</strong>" in page
    assert "The announcement was partial." in page

    listed = APIClient().get(f"/api/v1/markets/{market.slug}/events/").json()["results"]
    assert [row["kind"] for row in listed][:2] == ["re_resolved", "resolved"]
    assert listed[1]["actor"] == "resolver"
    assert listed[1]["details"]["outcome"] == "YES"


def test_a_retried_resolution_logs_nothing_more(make_market, resolver, start):
    market = make_market("retried", created_by=resolver, now=start)
    for _ in range(2):
        resolve(market, resolver, kind="annulled", reason="Void.")
    assert [event.kind for event in events(market)] == ["resolved"]


def test_a_proposal_made_final_is_logged_with_its_proposer(make_market, make_user, resolver, start):
    markets = [make_market(f"proposed-{index}", created_by=resolver, now=start) for index in range(3)]
    proposals = [
        proposal_create(
            market=market,
            user=resolver,
            kind="annulled" if index else "outcome",
            outcome_code="NO",
            reason=f"Answer {index}.",
            source_url="https://example.org/answer",
            known_at=None,
        )
        for index, market in enumerate(markets)
    ]
    with mock.patch("markets.services.proposals.settlements_enqueue"):
        assert proposals_finalize_due(now=proposals[-1].challenge_until) == 3

    for market, proposal in zip(markets, proposals, strict=True):
        proposal.refresh_from_db()
        (event,) = MarketEvent.objects.filter(market=market, kind=MarketEvent.Kind.RESOLVED)
        assert event.actor == resolver
        assert event.reason == proposal.reason
        assert (event.data["via"], event.data["proposal"]) == ("proposal", proposal.pk)
        assert event.data["resolution"] == proposal.resolution_id
    page = Client().get(f"/markets/{markets[0].slug}/").content.decode()
    assert f"No, by proposal {proposals[0].pk}" in page


def test_voided_late_trades_are_logged_once(make_market, make_user, resolver, start):
    market = make_market("voided", created_by=resolver, now=start)
    ana, ben = make_user("ana"), make_user("ben")
    trade_execute(user=ana, market=market, request=trade_request("YES", "buy", amount="20"), now=start + HOUR)
    for offset in (4, 5):
        trade_execute(
            user=ben, market=market, request=trade_request("NO", "buy", amount="10"), now=start + offset * HOUR
        )
    known_at = start + 3 * HOUR
    resolution = resolve(market, resolver, kind="outcome", outcome_code="YES", reason="Known early.", known_at=known_at)
    market_settle(market_id=market.pk)
    market_settle(market_id=market.pk)

    (voided,) = MarketEvent.objects.filter(market=market, kind=MarketEvent.Kind.TRADES_VOIDED)
    assert voided.actor == resolver
    assert voided.data["trades"] == 2
    assert voided.data["resolution"] == resolution.pk
    assert voided.data["known_at"] == known_at.isoformat()
    page = Client().get(f"/markets/{market.slug}/").content.decode()
    assert "<strong>Late trades voided</strong>" in page
    assert "2 trades placed after" in page
    assert "the answer was known on" in page
