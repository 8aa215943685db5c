"""Proposals and challenges on the website: the market page's section and challenge form, the list's badge,
the staff queue's decision and the resolve page's "propose" (markets.views.proposals, markets.views.staff)."""

from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from markets.models import Challenge, Market, Proposal
from markets.services import challenge_create, proposal_create
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db

SOURCE = "https://example.org/answer?a=1&b=2"


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


@pytest.fixture
def market(make_market, resolver):
    return make_market("paged", created_by=resolver, now=timezone.now() - timedelta(hours=3))


@pytest.fixture
def trader(make_user, market):
    user = make_user("ana")
    buy(user, market, "YES", "30")
    return user


@pytest.fixture
def proposal(market, resolver, trader, settings):
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("10")
    return proposal_create(
        market=market,
        user=resolver,
        kind="outcome",
        outcome_code="YES",
        reason="It <b>happened</b>.",
        source_url=SOURCE,
        known_at=timezone.now() - timedelta(hours=1),
    )


def client_for(user=None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def test_the_market_page_shows_the_proposal_and_a_trader_challenges_it(market, proposal, trader):
    page = client_for(trader).get(f"/markets/{market.slug}/").content.decode()
    assert "Proposed resolution" in page
    assert "open to challenge until" in page
    assert 'href="https://example.org/answer?a=1&amp;b=2"' in page
    assert "It &lt;b&gt;happened&lt;/b&gt;." in page
    assert "Challenge (10.00 cr bond)" in page

    response = client_for(trader).post(
        f"/markets/{market.slug}/proposals/{proposal.pk}/challenge/", {"reason": "<script>x</script>"}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"/markets/{market.slug}/#proposals")
    challenge = Challenge.objects.get()
    assert challenge.user == trader
    page = client_for().get(f"/markets/{market.slug}/").content.decode()
    assert "&lt;script&gt;x&lt;/script&gt;" in page
    assert "<script>x</script>" not in page
    # Challenged already: no second form for the same trader.
    assert "Challenge (10.00 cr bond)" not in client_for(trader).get(f"/markets/{market.slug}/").content.decode()


def test_a_visitor_who_never_traded_sees_no_form_and_cannot_challenge(market, proposal, make_user):
    stranger = make_user("stranger")
    assert "Challenge (" not in client_for(stranger).get(f"/markets/{market.slug}/").content.decode()
    response = client_for(stranger).post(f"/markets/{market.slug}/proposals/{proposal.pk}/challenge/", {"reason": "x"})
    assert response.status_code == 302
    assert not Challenge.objects.exists()
    anonymous = client_for().post(f"/markets/{market.slug}/proposals/{proposal.pk}/challenge/", {"reason": "x"})
    assert anonymous.status_code == 302
    assert "/accounts/login/" in anonymous["Location"]
    assert client_for(stranger).post(f"/markets/{market.slug}/proposals/999999/challenge/").status_code == 404


def test_the_list_card_carries_the_proposed_badge(market, proposal):
    page = client_for().get("/").content.decode()
    until = proposal.challenge_until.astimezone(UTC).strftime("%-d %b %H:%M")
    assert "Proposed: Yes, challenge until <time datetime=" in page
    assert until in page


def test_the_list_filters_the_proposed_markets(market, proposal, make_market, resolver):
    make_market("still-open")
    closed = make_market("just-closed", created_by=resolver)
    Market.objects.filter(pk=closed.pk).update(status=Market.Status.CLOSED)
    page = client_for().get("/", {"status": "proposed"}).content.decode()
    assert '<option value="proposed" selected>Proposed</option>' in page
    assert f"/markets/{market.slug}/" in page
    assert "/markets/still-open/" not in page
    assert "/markets/just-closed/" not in page
    everything = client_for().get("/").content.decode()
    assert "/markets/still-open/" in everything


def test_a_resolver_rejects_a_challenge_from_the_queue(market, proposal, trader, resolver, make_user):
    challenge_create(proposal=proposal, user=trader, reason="Wrong source.")
    queue = client_for(resolver).get("/staff/resolutions/").content.decode()
    assert "Challenged proposals" in queue
    assert "Wrong source." in queue
    path = f"/staff/proposals/{proposal.pk}/decide/"
    clerk = make_user("clerk", is_staff=True, is_superuser=False)
    assert client_for(clerk).post(path, {"decision": "reject", "note": "No."}).status_code == 403
    assert client_for(trader).post(path, {"decision": "reject", "note": "No."}).status_code == 403
    response = client_for(resolver).post(path, {"decision": "reject", "note": "The source is right."})
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.FINAL
    assert Market.objects.get(pk=market.pk).status == Market.Status.RESOLVING


def test_the_resolve_page_proposes_with_the_window(market, resolver, trader):
    response = client_for(resolver).post(
        f"/staff/markets/{market.slug}/resolve/",
        {
            "kind": "annulled",
            "reason": "Void.",
            "source_url": SOURCE,
            "known_at": (timezone.now() - timedelta(minutes=30)).strftime("%Y-%m-%d %H:%M"),
            "confirm": "propose",
        },
    )
    assert response.status_code == 302
    proposal = Proposal.objects.get()
    assert proposal.kind == "annulled"
    assert proposal.state == Proposal.State.OPEN
    missing = client_for(resolver).post(
        f"/staff/markets/{market.slug}/resolve/",
        {"kind": "annulled", "reason": "Void.", "source_url": "javascript:alert(1)", "confirm": "propose"},
    )
    assert missing.status_code == 422


def test_staff_without_the_permission_do_not_reach_the_resolution_pages(market, make_user):
    clerk = client_for(make_user("clerk", is_staff=True, is_superuser=False))
    assert clerk.get("/staff/resolutions/").status_code == 403
    # The header offers the queue to resolvers only: a link that answers 403 is no help.
    header = clerk.get("/").content.decode()
    assert "Reported comments" in header
    assert "Resolution queue" not in header
    assert "Resolution queue" in client_for(make_user("judge", is_staff=True)).get("/").content.decode()
    assert clerk.get(f"/staff/markets/{market.slug}/resolve/").status_code == 403
