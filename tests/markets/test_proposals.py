"""Resolution proposals: who may propose, what a proposal must carry, the challenge window and the beat
task that finalizes what nobody challenged (markets.services.proposals, docs/settlement.md)."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.money import ZERO
from markets.errors import InvalidInput, MarketStateError
from markets.models import Market, Proposal, Resolution
from markets.services import market_resolve, market_settle, markets_reconcile, proposal_create, proposals_finalize_due
from markets.services.announce import market_changes_announce
from tests.markets.settlement_helpers import balances, buy, expected_payouts

pytestmark = pytest.mark.django_db

SOURCE = "https://www.nato.int/cps/en/natohq/news_226902.htm"


@pytest.fixture
def resolver(make_user):
    return make_user("resolver", is_staff=True)


@pytest.fixture
def market(make_market, resolver, make_user):
    market = make_market("rutte", created_by=resolver, now=timezone.now() - timedelta(hours=2))
    buy(make_user("ana"), market, "YES", "30")
    buy(make_user("ben"), market, "NO", "20")
    return market


def propose(market, user, *, now=None, **overrides):
    arguments = {
        "kind": "outcome",
        "outcome_code": "YES",
        "reason": "NATO appointed him on 26 June.",
        "source_url": SOURCE,
        # After the fixture's trades: none of them is late (tests/markets/test_voiding.py covers late ones).
        "known_at": now or timezone.now(),
        **overrides,
    }
    return proposal_create(market=market, user=user, now=now, **arguments)


def api(user=None) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_login(user)
    return client


def test_a_proposal_closes_the_market_and_stays_open_to_challenge_for_the_window(market, resolver, settings):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(hours=24)
    now = timezone.now()
    proposal = propose(market, resolver, now=now)
    market.refresh_from_db()
    assert market.status == Market.Status.CLOSED
    assert market.closed_at == now
    assert proposal.state == Proposal.State.OPEN
    assert proposal.challenge_until == now + timedelta(hours=24)
    assert proposal.payouts == ["1", "0"]
    assert not Resolution.objects.filter(market=market).exists()


def test_the_beat_task_finalizes_only_proposals_whose_window_ended_and_only_once(market, resolver):
    now = timezone.now()
    proposal = propose(market, resolver, now=now)
    traders = list(market.positions.values_list("user_id", flat=True).distinct())
    expected = expected_payouts(market=market, kind="outcome", per_share=[Decimal(1), ZERO])

    assert proposals_finalize_due(now=proposal.challenge_until - timedelta(seconds=1)) == 0
    assert proposals_finalize_due(now=proposal.challenge_until) == 1
    assert proposals_finalize_due(now=proposal.challenge_until + timedelta(hours=1)) == 0

    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.FINAL
    resolution = proposal.resolution
    assert resolution is not None
    assert resolution.is_current
    assert (resolution.kind, resolution.payouts, resolution.reason) == ("outcome", ["1", "0"], proposal.reason)
    assert resolution.known_at == proposal.known_at
    assert resolution.created_by == resolver
    assert Market.objects.get(pk=market.pk).status == Market.Status.RESOLVING

    # Settled and scored exactly as a direct resolution: the same settlement service, run by the same task.
    before = balances_by_id(traders)
    assert market_settle(market_id=market.pk) is not None
    after = balances_by_id(traders)
    assert {user_id: after[user_id] - before[user_id] for user_id in traders} == expected
    assert Market.objects.get(pk=market.pk).status == Market.Status.RESOLVED
    assert markets_reconcile() == []


def balances_by_id(user_ids):
    from accounts.models import User

    return balances(list(User.objects.filter(pk__in=user_ids)))


def test_a_proposal_becomes_final_once_the_database_refuses_a_second_resolution_for_it(market, resolver):
    proposal = propose(market, resolver)
    proposals_finalize_due(now=proposal.challenge_until)
    proposal.refresh_from_db()
    with pytest.raises(IntegrityError), transaction.atomic():
        Proposal.objects.create(
            market=market,
            kind=proposal.kind,
            payouts=proposal.payouts,
            outcome=proposal.outcome,
            reason="the same resolution again",
            source_url=SOURCE,
            created_by=resolver,
            created_at=timezone.now(),
            challenge_until=timezone.now(),
            state=Proposal.State.FINAL,
            resolution=proposal.resolution,
        )
    live = {
        "market": market,
        "kind": "annulled",
        "reason": "a live one",
        "source_url": SOURCE,
        "created_by": resolver,
        "created_at": timezone.now(),
        "challenge_until": timezone.now(),
    }
    Proposal.objects.create(**live)
    with pytest.raises(IntegrityError), transaction.atomic():
        Proposal.objects.create(**live)


def test_a_retried_proposal_returns_the_first_and_a_new_one_replaces_an_unchallenged_one(market, resolver):
    now = timezone.now()
    first = propose(market, resolver, now=now)
    assert propose(market, resolver, now=now).pk == first.pk
    second = propose(market, resolver, now=now, kind="annulled", outcome_code=None, reason="The question was void.")
    first.refresh_from_db()
    assert first.state == Proposal.State.WITHDRAWN
    assert second.state == Proposal.State.OPEN
    assert Proposal.objects.filter(market=market, state__in=Proposal.LIVE_STATES).get() == second


def test_resolving_directly_withdraws_the_open_proposal(market, resolver):
    proposal = propose(market, resolver)
    market_resolve(market=market, user=resolver, kind="outcome", outcome_code="NO", reason="Resolve now.")
    proposal.refresh_from_db()
    assert proposal.state == Proposal.State.WITHDRAWN
    assert proposals_finalize_due(now=proposal.challenge_until) == 0


@pytest.mark.parametrize(
    "url",
    [
        "",
        "javascript:alert(1)",
        "ftp://example.com/file",
        "data:text/html,<script>",
        "https://",
        "nato.int/news",
        "https://exa mple.com/",
        "https://example.com/" + "a" * 600,
    ],
)
def test_the_source_must_be_an_http_or_https_link(market, resolver, url):
    with pytest.raises(InvalidInput) as error:
        propose(market, resolver, source_url=url)
    assert error.value.field == "source_url"
    assert not Proposal.objects.exists()


def test_known_at_is_neither_in_the_future_nor_before_the_opening(market, resolver):
    now = timezone.now()
    with pytest.raises(InvalidInput) as error:
        propose(market, resolver, now=now, known_at=now + timedelta(minutes=1))
    assert error.value.field == "known_at"
    with pytest.raises(InvalidInput) as error:
        propose(market, resolver, now=now, known_at=market.opens_at - timedelta(seconds=1))
    assert error.value.field == "known_at"


def test_only_an_open_or_closed_market_takes_a_proposal(market, resolver):
    market_resolve(market=market, user=resolver, kind="annulled", reason="Void.")
    with pytest.raises(MarketStateError):
        propose(market, resolver)


def test_staff_without_the_permission_cannot_propose_or_resolve_until_granted(market, make_user):
    staff = make_user("clerk", is_staff=True, is_superuser=False)
    with pytest.raises(PermissionDenied):
        propose(market, staff)
    with pytest.raises(PermissionDenied):
        market_resolve(market=market, user=staff, kind="annulled", reason="Void.")
    for path, body in [
        (f"/api/v1/markets/{market.slug}/proposals/", {"kind": "annulled", "reason": "r", "source_url": SOURCE}),
        (f"/api/v1/markets/{market.slug}/resolution/", {"kind": "annulled", "reason": "r"}),
    ]:
        assert api(staff).post(path, {**body, "known_at": timezone.now().isoformat()}, format="json").status_code == 403
    assert not Proposal.objects.exists()
    assert not Resolution.objects.exists()

    staff.user_permissions.add(Permission.objects.get(codename="resolve_market"))
    staff = type(staff).objects.get(pk=staff.pk)  # a fresh permission cache
    assert propose(market, staff).state == Proposal.State.OPEN


def test_the_migration_grants_the_permission_to_existing_staff_only(make_user):
    from importlib import import_module

    from django.apps import apps

    staff = make_user("old-staff", is_staff=True, is_superuser=False)
    trader = make_user("old-trader")
    migration = import_module("markets.migrations.0007_proposals_challenges_voiding")
    migration.grant_resolve_to_existing_staff(apps, None)
    assert type(staff).objects.get(pk=staff.pk).has_perm("markets.resolve_market")
    assert not type(trader).objects.get(pk=trader.pk).has_perm("markets.resolve_market")


def test_the_api_takes_a_proposal_from_a_resolver_and_shows_it_publicly(
    market, resolver, settings, django_capture_on_commit_callbacks
):
    settings.FORECASTLE_CHALLENGE_WINDOW = timedelta(hours=6)
    known_at = timezone.now() - timedelta(hours=1)
    response = api(resolver).post(
        f"/api/v1/markets/{market.slug}/proposals/",
        {
            "kind": "outcome",
            "outcome": "YES",
            "reason": "Appointed.",
            "source_url": SOURCE,
            "known_at": known_at.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    proposal = Proposal.objects.get()
    assert body["id"] == proposal.pk
    assert body["state"] == "open"
    assert body["outcome"] == "YES"
    assert body["payouts"] == {"YES": "1", "NO": "0"}
    assert body["source_url"] == SOURCE
    assert body["challenges"] == []

    listing = api().get(f"/api/v1/markets/{market.slug}/proposals/")
    assert listing.status_code == 200
    assert [row["id"] for row in listing.json()] == [proposal.pk]

    detail = api().get(f"/api/v1/markets/{market.slug}/").json()
    assert detail["status"] == "closed"
    assert detail["proposal"]["id"] == proposal.pk
    assert detail["proposal"]["challenge_until"].startswith(proposal.challenge_until.isoformat()[:19])
    assert detail["proposal"]["challenge_count"] == 0

    with django_capture_on_commit_callbacks(execute=True):
        proposals_finalize_due(now=proposal.challenge_until)
    detail = api().get(f"/api/v1/markets/{market.slug}/").json()
    assert detail["proposal"] is None
    assert detail["status"] == "resolving"


def test_the_api_list_filters_the_proposed_markets(market, resolver, make_market):
    make_market("still-open")
    closed = make_market("just-closed")
    Market.objects.filter(pk=closed.pk).update(status=Market.Status.CLOSED)
    propose(market, resolver)
    listed = api().get("/api/v1/markets/", {"status": "proposed"}).json()["results"]
    assert [row["slug"] for row in listed] == [market.slug]
    assert listed[0]["status"] == "closed"
    closed_slugs = {row["slug"] for row in api().get("/api/v1/markets/", {"status": "closed"}).json()["results"]}
    assert closed_slugs == {market.slug, "just-closed"}


def test_finalizing_many_proposals_announces_them_together(
    make_market, resolver, monkeypatch, django_capture_on_commit_callbacks, isolated_cache
):
    """After the commit: one snapshot rebuild for all the markets (a few queries, one store), one producer for all
    the settlement messages, instead of one of each per market."""
    markets = [make_market(f"batch-{index}", created_by=resolver) for index in range(6)]
    proposals = [propose(market, resolver, known_at=None) for market in markets]
    # The cached details still say "closed" with the proposal.
    for market in markets:
        assert api().get(f"/api/v1/markets/{market.slug}/").json()["status"] == "closed"
    sent: list[tuple[str, list[int], object]] = []
    monkeypatch.setattr(
        "markets.services.resolution.current_app.send_task",
        lambda name, args, producer: sent.append((name, list(args), producer)),
    )
    with django_capture_on_commit_callbacks() as callbacks:
        assert proposals_finalize_due(now=max(p.challenge_until for p in proposals)) == 6
    prices_batches = [c for c in callbacks if getattr(c, "func", None) is market_changes_announce]
    assert len(prices_batches) == 1
    # The batch also publishes each market's events (a read of the market each): counted apart.
    published: list[int] = []
    monkeypatch.setattr("markets.services.announce.stream_publish", published.append)
    with CaptureQueriesContext(connection) as queries:
        prices_batches[0]()
    assert len(queries.captured_queries) <= 5  # markets, outcomes, resolutions, proposals
    assert sorted(published) == sorted(market.pk for market in markets)
    for callback in callbacks:
        if callback is not prices_batches[0]:
            callback()
    assert sorted(args[0] for _name, args, _producer in sent) == sorted(market.pk for market in markets)
    assert len({id(producer) for _name, _args, producer in sent}) == 1
    for market in markets:
        detail = api().get(f"/api/v1/markets/{market.slug}/").json()
        assert (detail["status"], detail["proposal"]) == ("resolving", None)
        assert detail["resolution"]["state"] == "pending"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"source_url": "javascript:alert(1)"}, "source_url"),
        ({"known_at": "yesterday"}, "known_at"),
        ({"known_at": "2999-01-01T00:00:00Z"}, "known_at"),
        ({"kind": "outcome", "outcome": "MAYBE"}, "outcome"),
        ({"kind": "split", "split": ["0.5", "0.6"]}, "split"),
        ({"reason": ""}, "reason"),
        ({"kind": "nonsense"}, "kind"),
    ],
)
def test_bad_proposals_are_400s_naming_the_field(market, resolver, body, field):
    request = {
        "kind": "annulled",
        "reason": "Void.",
        "source_url": SOURCE,
        "known_at": timezone.now().isoformat(),
        **body,
    }
    response = api(resolver).post(f"/api/v1/markets/{market.slug}/proposals/", request, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not Proposal.objects.exists()


def test_anonymous_and_traders_cannot_propose(market, make_user):
    path = f"/api/v1/markets/{market.slug}/proposals/"
    body = {"kind": "annulled", "reason": "r", "source_url": SOURCE, "known_at": timezone.now().isoformat()}
    assert api().post(path, body, format="json").status_code in (401, 403)
    assert api(make_user("mallory")).post(path, body, format="json").status_code == 403
    assert api().get("/api/v1/markets/nope/proposals/").status_code == 404
