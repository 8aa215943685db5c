"""Challenges: who may challenge, the bond's way through the ledger (in once, out once), the staff decision
and the throttle (markets.services.proposals, docs/settlement.md)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Account, LedgerTransaction
from accounts.services import ledger_transfer, system_account
from markets.errors import InsufficientFunds, MarketStateError, NotATrader
from markets.models import Challenge, Market, Proposal
from markets.services import (
    challenge_create,
    challenge_decide,
    market_resolve,
    markets_reconcile,
    proposal_create,
    proposals_finalize_due,
)
from tests.markets.settlement_helpers import buy

pytestmark = pytest.mark.django_db

SOURCE = "https://example.org/answer"


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


@pytest.fixture
def market(make_market, resolver):
    return make_market("challenged", created_by=resolver, now=timezone.now() - timedelta(hours=2))


@pytest.fixture
def traders(make_user, market):
    ana, ben = make_user("ana"), make_user("ben")
    buy(ana, market, "YES", "30")
    buy(ben, market, "NO", "20")
    return ana, ben


@pytest.fixture
def proposal(market, resolver, traders, settings):
    settings.FORECASTLE_CHALLENGE_BOND = Decimal("10")
    return proposal_create(
        market=market,
        user=resolver,
        kind="outcome",
        outcome_code="YES",
        reason="It happened.",
        source_url=SOURCE,
        known_at=timezone.now() - timedelta(minutes=5),
    )


def wallet(user) -> Decimal:
    return Account.objects.get(user=user).balance


def held() -> Decimal:
    return system_account(kind=Account.Kind.HELD).balance


def house() -> Decimal:
    return system_account(kind=Account.Kind.HOUSE).balance


def test_a_trader_challenges_and_the_bond_moves_to_the_held_account_once(proposal, traders):
    ana, _ = traders
    before = wallet(ana)
    result = challenge_create(proposal=proposal, user=ana, reason="It did not.")
    assert result.created
    challenge = result.challenge
    assert challenge.bond == Decimal("10")
    assert wallet(ana) == before - Decimal("10")
    assert held() == Decimal("10")
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.CHALLENGED

    again = challenge_create(proposal=proposal, user=ana, reason="Retried.")
    assert not again.created
    assert again.challenge.pk == challenge.pk
    assert wallet(ana) == before - Decimal("10")
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.BOND).count() == 1
    with pytest.raises(IntegrityError), transaction.atomic():
        Challenge.objects.create(
            proposal=proposal,
            market=proposal.market,
            user=ana,
            reason="twice",
            bond=Decimal("10"),
            created_at=timezone.now(),
            bond_transaction=LedgerTransaction.objects.create(kind="bond", memo="x"),
        )
    assert markets_reconcile() == []


def test_reconciliation_finds_a_bond_that_left_the_held_account_unrecorded(proposal, traders):
    challenge_create(proposal=proposal, user=traders[0], reason="Wrong.")
    assert markets_reconcile() == []
    ledger_transfer(
        source=system_account(kind=Account.Kind.HELD),
        destination=Account.objects.get(user=traders[0]),
        amount=Decimal("10"),
        kind=LedgerTransaction.Kind.ADJUSTMENT,
        memo="a bond returned behind the challenge's back",
    )
    assert [violation.invariant for violation in markets_reconcile()] == ["held_equals_open_bonds"]


def test_a_challenged_proposal_is_not_finalized_by_the_beat_task(proposal, traders):
    challenge_create(proposal=proposal, user=traders[0], reason="Wrong.")
    assert proposals_finalize_due(now=proposal.challenge_until + timedelta(days=3)) == 0
    assert Market.objects.get(pk=proposal.market_id).status == Market.Status.CLOSED


def test_only_traders_of_the_market_challenge_and_only_in_the_window(proposal, make_user, traders):
    with pytest.raises(NotATrader):
        challenge_create(proposal=proposal, user=make_user("stranger"), reason="I disagree.")
    with pytest.raises(MarketStateError):
        challenge_create(proposal=proposal, user=traders[0], reason="Too late.", now=proposal.challenge_until)
    assert not Challenge.objects.exists()
    assert held() == 0


def test_a_trader_without_the_bond_cannot_challenge(proposal, traders, settings):
    ana, _ = traders
    settings.FORECASTLE_CHALLENGE_BOND = wallet(ana) + 1
    with pytest.raises(InsufficientFunds) as error:
        challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    assert error.value.field == "bond"
    assert not Challenge.objects.exists()


def test_upholding_returns_every_bond_and_leaves_the_market_for_a_new_decision(proposal, traders, resolver):
    _ana, _ben = traders
    before = {user.pk: wallet(user) for user in traders}
    house_before = house()
    for user in traders:
        challenge_create(proposal=proposal, user=user, reason="Wrong.")
    assert held() == Decimal("20")
    decided = challenge_decide(proposal=proposal, user=resolver, decision="uphold", note="The source was wrong.")
    assert decided.state == Proposal.State.OVERTURNED
    assert {user.pk: wallet(user) for user in traders} == before
    assert held() == 0
    assert house() == house_before
    assert set(Challenge.objects.values_list("state", flat=True)) == {Challenge.State.UPHELD}
    # Deciding again changes nothing: each bond moved once.
    challenge_decide(proposal=proposal, user=resolver, decision="uphold", note="Again.")
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.BOND_RETURN).count() == 2
    assert Market.objects.get(pk=proposal.market_id).status == Market.Status.CLOSED
    # The resolver then resolves directly (or proposes again).
    market_resolve(market=proposal.market, user=resolver, kind="outcome", outcome_code="NO", reason="Corrected.")
    assert markets_reconcile() == []


def test_rejecting_keeps_the_bonds_for_the_house_and_makes_the_proposal_final(proposal, traders, resolver):
    ana, _ = traders
    challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    house_before = house()
    decided = challenge_decide(proposal=proposal, user=resolver, decision="reject", note="The source is clear.")
    assert decided.state == Proposal.State.FINAL
    assert decided.resolution is not None
    assert house() == house_before + Decimal("10")
    assert held() == 0
    assert Market.objects.get(pk=proposal.market_id).status == Market.Status.RESOLVING
    assert Challenge.objects.get().state == Challenge.State.REJECTED
    challenge_decide(proposal=proposal, user=resolver, decision="reject", note="Retried.")
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.BOND_FORFEIT).count() == 1
    assert markets_reconcile() == []


def test_a_challenged_proposal_blocks_a_direct_resolution_and_a_new_proposal(proposal, traders, resolver):
    challenge_create(proposal=proposal, user=traders[0], reason="Wrong.")
    with pytest.raises(MarketStateError):
        market_resolve(market=proposal.market, user=resolver, kind="annulled", reason="Void.")
    with pytest.raises(MarketStateError):
        proposal_create(
            market=proposal.market,
            user=resolver,
            kind="annulled",
            reason="Void.",
            source_url=SOURCE,
            known_at=None,
        )


def test_the_challenge_api(proposal, traders, make_user):
    client = APIClient()
    client.force_login(traders[0])
    path = f"/api/v1/markets/{proposal.market.slug}/proposals/{proposal.pk}/challenges/"
    response = client.post(path, {"reason": "The source is a parody site."}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["bond"] == "10.000000"
    assert response.json()["state"] == "open"
    assert client.post(path, {"reason": "again"}, format="json").status_code == 200

    assert client.post(path, {"reason": ""}, format="json").status_code == 400
    assert APIClient().post(path, {"reason": "x"}, format="json").status_code in (401, 403)
    stranger = APIClient()
    stranger.force_login(make_user("stranger"))
    refused = stranger.post(path, {"reason": "x"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "not_a_trader"
    missing = f"/api/v1/markets/{proposal.market.slug}/proposals/{proposal.pk + 999}/challenges/"
    assert client.post(missing, {"reason": "x"}, format="json").status_code == 404

    listed = APIClient().get(f"/api/v1/markets/{proposal.market.slug}/proposals/").json()
    assert [c["username"] for c in listed[0]["challenges"]] == [traders[0].username]
    detail = APIClient().get(f"/api/v1/markets/{proposal.market.slug}/").json()
    assert detail["proposal"]["state"] in ("challenged", "open")


def test_challenges_are_rate_limited_per_account(proposal, traders, settings, isolated_cache):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "challenge": "2/hour"},
    }
    client = APIClient()
    client.force_login(traders[0])
    path = f"/api/v1/markets/{proposal.market.slug}/proposals/{proposal.pk}/challenges/"
    statuses = [client.post(path, {"reason": "x"}, format="json").status_code for _ in range(3)]
    assert statuses == [201, 200, 429]


def decision_path(proposal) -> str:
    return f"/api/v1/markets/{proposal.market.slug}/proposals/{proposal.pk}/decision/"


def test_a_resolver_rejects_a_challenge_through_the_api_once(
    proposal, traders, resolver, django_capture_on_commit_callbacks
):
    ana, _ = traders
    challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    client = APIClient()
    client.force_login(resolver)
    house_before = house()
    with django_capture_on_commit_callbacks() as settlements:
        response = client.post(
            decision_path(proposal), {"decision": "reject", "note": "The source is clear."}, format="json"
        )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "final"
    assert body["decision_note"] == "The source is clear."
    assert body["resolution"] is not None
    assert [c["state"] for c in body["challenges"]] == ["rejected"]
    assert house() == house_before + Decimal("10")
    assert held() == 0
    assert Market.objects.get(pk=proposal.market_id).status == Market.Status.RESOLVING
    assert len(settlements) >= 1  # the settlement message, after commit

    # A retried request returns the decided proposal and moves nothing; the other decision is refused.
    again = client.post(decision_path(proposal), {"decision": "reject", "note": "Retried."}, format="json")
    assert again.status_code == 200
    assert again.json()["decision_note"] == "The source is clear."
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.BOND_FORFEIT).count() == 1
    conflict = client.post(decision_path(proposal), {"decision": "uphold", "note": "Changed my mind."}, format="json")
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "invalid_market_state"
    assert markets_reconcile() == []


def test_a_resolver_upholds_a_challenge_through_the_api_and_the_bonds_go_back(proposal, traders, resolver):
    ana, ben = traders
    before = {user.pk: wallet(user) for user in traders}
    challenge_create(proposal=proposal, user=ana, reason="Wrong.")
    challenge_create(proposal=proposal, user=ben, reason="Also wrong.")
    client = APIClient()
    client.force_login(resolver)
    response = client.post(decision_path(proposal), {"decision": "uphold", "note": "Misread."}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["state"] == "overturned"
    assert {c["state"] for c in response.json()["challenges"]} == {"upheld"}
    assert {user.pk: wallet(user) for user in traders} == before
    assert held() == 0
    assert Market.objects.get(pk=proposal.market_id).status == Market.Status.CLOSED
    assert client.post(decision_path(proposal), {"decision": "uphold", "note": "x"}, format="json").status_code == 200
    assert LedgerTransaction.objects.filter(kind=LedgerTransaction.Kind.BOND_RETURN).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"decision": "maybe", "note": "x"}, "decision"),
        ({"note": "x"}, "decision"),
        ({"decision": "reject"}, "note"),
        ({"decision": "reject", "note": "   "}, "note"),
        ({"decision": "reject", "note": "x" * 2001}, "note"),
    ],
)
def test_a_bad_decision_is_a_400_naming_the_field_and_nothing_moves(proposal, traders, resolver, body, field):
    challenge_create(proposal=proposal, user=traders[0], reason="Wrong.")
    client = APIClient()
    client.force_login(resolver)
    response = client.post(decision_path(proposal), body, format="json")
    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["fields"]) == [field]
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.CHALLENGED
    assert held() == Decimal("10")


def test_only_resolvers_decide_and_only_a_challenged_proposal(proposal, traders, make_user):
    path = decision_path(proposal)
    body = {"decision": "reject", "note": "x"}
    assert APIClient().post(path, body, format="json").status_code in (401, 403)
    for user in (traders[0], make_user("clerk", is_staff=True, is_superuser=False)):
        client = APIClient()
        client.force_login(user)
        refused = client.post(path, body, format="json")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "permission_denied"
    resolver = APIClient()
    resolver.force_login(make_user("judge", is_staff=True))
    unchallenged = resolver.post(path, body, format="json")
    assert unchallenged.status_code == 409
    assert unchallenged.json()["error"]["code"] == "invalid_market_state"
    missing = f"/api/v1/markets/{proposal.market.slug}/proposals/{proposal.pk + 999}/decision/"
    assert resolver.post(missing, body, format="json").status_code == 404
    assert Proposal.objects.get(pk=proposal.pk).state == Proposal.State.OPEN
