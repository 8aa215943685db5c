"""Resolution as a process: proposals, a challenge window, challenges with bonds (docs/settlement.md).

A resolver proposes (`proposal_create`): the market stops trading and the proposal is public until its
`challenge_until`. A trader of the market may challenge it (`challenge_create`), posting a bond that the
ledger moves from their wallet to the held account. The beat task (`proposals_finalize_due`) turns every
unchallenged proposal whose window ended into the market's Resolution, set-based, and the settlement task
pays it exactly as a direct resolution. A challenged proposal waits for a resolver (`challenge_decide`):
upholding returns the bonds and sets the proposal aside (the resolver then proposes again or resolves
directly); rejecting sends the bonds to the house and makes the proposal final.

Every write takes the market's row lock first, so proposals, challenges, trades and settlement of one market
are serialised. Exactly once is held by the database: one live proposal per market, one resolution per
proposal (a one-to-one), one challenge per trader and proposal, and each bond movement carries a unique
ledger reference (`bond:<proposal>:<user>`, `bond-return:<challenge>`, `bond-forfeit:<challenge>`).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Account, LedgerTransaction, User
from accounts.money import credits
from accounts.services import Posting, ledger_post, ledger_post_set, system_account, wallet_key
from markets.errors import InsufficientFunds, InvalidInput, MarketStateError, NotATrader
from markets.locks import market_lock, markets_lock
from markets.models import Challenge, Market, MarketEvent, Outcome, Position, Proposal, Resolution
from markets.services.changes import market_changed, markets_changed
from markets.services.notifications import ProposalEvent, proposal_notify_enqueue
from markets.services.orders import market_orders_cancel
from markets.services.resolution import (
    ResolvedVia,
    known_at_check,
    reason_check,
    resolution_event,
    resolution_terms,
    resolver_check,
    settlements_enqueue,
)

MAX_SOURCE_URL_LENGTH = 500
PROPOSABLE = (Market.Status.OPEN, Market.Status.CLOSED)
PROPOSAL_TABLE = Proposal._meta.db_table


def source_url_check(source_url: str | None) -> str:
    """An http(s) link with a host; anything else (javascript:, data:, a bare word) is refused."""
    url = (source_url or "").strip()
    if not url:
        raise InvalidInput("Link the source of the answer.", field="source_url")
    if len(url) > MAX_SOURCE_URL_LENGTH:
        raise InvalidInput(f"Keep the link under {MAX_SOURCE_URL_LENGTH} characters.", field="source_url")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidInput("Enter a valid http or https link.", field="source_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise InvalidInput("Enter a valid http or https link.", field="source_url")
    return url


def challenge_window_end(*, now: datetime) -> datetime:
    return now + settings.FORECASTLE_CHALLENGE_WINDOW


def challenge_bond() -> Decimal:
    bond = credits(settings.FORECASTLE_CHALLENGE_BOND)
    if bond <= 0:
        raise ValueError("CHALLENGE_BOND must be a positive number of credits")
    return bond


def proposal_create(
    *,
    market: Market,
    user: User | AnonymousUser,
    kind: str,
    reason: str,
    source_url: str,
    known_at: datetime | None,
    outcome_code: str | None = None,
    split: Sequence[object] | None = None,
    now: datetime | None = None,
) -> Proposal:
    """A resolver proposes how an open or closed market resolves; it is final once its window ends unchallenged.

    An open market stops trading at once (its close is now): the answer is known. A proposal still open to
    challenge is replaced (withdrawn); one already challenged must be decided first. The same proposal sent
    again (a retried request) returns the one already made.
    """
    resolver = resolver_check(user)
    now = now or timezone.now()
    reason = reason_check(reason, what="proposal")
    source_url = source_url_check(source_url)
    with transaction.atomic():
        market = market_lock(market_id=market.pk)
        if market.status not in PROPOSABLE:
            raise MarketStateError(
                f"Only an open or closed market takes a proposal; this one is {market.status} (re-resolve it directly)."
            )
        known_at = known_at_check(known_at, market=market, now=now)
        outcomes = list(Outcome.objects.filter(market=market).order_by("index"))
        winner, payouts = resolution_terms(outcomes=outcomes, kind=kind, outcome_code=outcome_code, split=split)
        live = Proposal.objects.filter(market=market, state__in=Proposal.LIVE_STATES).first()
        if live is not None:
            if (live.kind, live.payouts, live.known_at, live.source_url, live.reason, live.created_by_id) == (
                kind,
                payouts,
                known_at,
                source_url,
                reason,
                resolver.pk,
            ):
                return live
            if live.state == Proposal.State.CHALLENGED:
                raise MarketStateError("The current proposal is challenged: uphold or reject its challenges first.")
            live.state = Proposal.State.WITHDRAWN
            live.decided_by = resolver
            live.decided_at = now
            live.decision_note = "Withdrawn: replaced by a new proposal."
            live.save(update_fields=["state", "decided_by", "decided_at", "decision_note"])
        if market.status == Market.Status.OPEN:
            market.status = Market.Status.CLOSED
            market.closed_at = now
            market.save(update_fields=["status", "closed_at"])
        market_orders_cancel(market_id=market.pk, reason="resolution proposed", now=now)
        proposal = Proposal.objects.create(
            market=market,
            kind=kind,
            payouts=payouts,
            outcome=winner,
            reason=reason,
            source_url=source_url,
            known_at=known_at,
            created_by=resolver,
            created_at=now,
            challenge_until=challenge_window_end(now=now),
        )
        market_changed(market_id=market.pk)
        proposal_notify_enqueue(proposal_id=proposal.pk, event=ProposalEvent.PROPOSED)
    return proposal


def _finalize(*, proposals: list[Proposal], now: datetime) -> int:
    """Turns proposals into their markets' resolutions, set-based; the caller holds every market's lock and
    has checked that each proposal is live. Settlements are enqueued after commit."""
    if not proposals:
        return 0
    resolutions = Resolution.objects.bulk_create(
        Resolution(
            market_id=proposal.market_id,
            kind=proposal.kind,
            payouts=proposal.payouts,
            outcome_id=proposal.outcome_id,
            reason=proposal.reason,
            known_at=proposal.known_at,
            created_by_id=proposal.created_by_id,
            created_at=now,
        )
        for proposal in proposals
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""UPDATE {PROPOSAL_TABLE} p SET state = %s, resolution_id = f.resolution_id
                FROM unnest(%s::bigint[], %s::bigint[]) AS f(proposal_id, resolution_id)
                WHERE p.id = f.proposal_id""",  # noqa: S608 - the table name is the model's own
            [
                Proposal.State.FINAL.value,
                [proposal.pk for proposal in proposals],
                [resolution.pk for resolution in resolutions],
            ],
        )
    market_ids = [proposal.market_id for proposal in proposals]
    outcomes: dict[int, list[Outcome]] = {market_id: [] for market_id in market_ids}
    for outcome in Outcome.objects.filter(market_id__in=market_ids).order_by("market_id", "index"):
        outcomes[outcome.market_id].append(outcome)
    MarketEvent.objects.bulk_create(
        resolution_event(
            resolution=resolution,
            outcomes=outcomes[proposal.market_id],
            via=ResolvedVia.PROPOSAL,
            proposal_id=proposal.pk,
        )
        for proposal, resolution in zip(proposals, resolutions, strict=True)
    )
    Market.objects.filter(pk__in=market_ids, closed_at__isnull=True).update(closed_at=now)
    Market.objects.filter(pk__in=market_ids).update(status=Market.Status.RESOLVING, resolved_at=None)
    # After commit, for all of them at once: their snapshots rebuilt in a few queries, the messages sent through one
    # producer (finalizing 1,000 proposals was dominated by doing both per market: docs/benchmarks.md).
    markets_changed(market_ids=market_ids)
    settlements_enqueue(market_ids=market_ids)
    return len(proposals)


def proposals_finalize_due(*, now: datetime | None = None) -> int:
    """Every unchallenged proposal whose window has ended becomes its market's resolution; how many did.

    Safe to run twice or at once: the markets are locked in id order and the proposals read under those
    locks, so a second run finds them final. A window that ended while no worker ran is simply due now."""
    now = now or timezone.now()
    due = Proposal.objects.filter(state=Proposal.State.OPEN, challenge_until__lte=now)
    with transaction.atomic():
        market_ids = markets_lock(query=Market.objects.filter(pk__in=due.values("market_id"), status__in=PROPOSABLE))
        if not market_ids:
            return 0
        proposals = list(due.filter(market_id__in=market_ids).order_by("market_id"))
        return _finalize(proposals=proposals, now=now)


def proposal_live(*, market: Market) -> Proposal | None:
    return Proposal.objects.filter(market=market, state__in=Proposal.LIVE_STATES).first()


@dataclass(frozen=True)
class ChallengeResult:
    challenge: Challenge
    # False when this trader had already challenged this proposal (a retried request): nothing moved now.
    created: bool


def challenge_create(*, proposal: Proposal, user: User, reason: str, now: datetime | None = None) -> ChallengeResult:
    """A trader of the market contests a live proposal before its window ends, posting the bond.

    The bond moves from the trader's wallet to the held account in the same transaction as the challenge
    row; a trader challenges a proposal once (a retry returns the first challenge)."""
    now = now or timezone.now()
    reason = reason_check(reason, what="challenge")
    bond = challenge_bond()
    with transaction.atomic():
        market_lock(market_id=proposal.market_id)
        proposal = Proposal.objects.get(pk=proposal.pk)
        existing = Challenge.objects.filter(proposal=proposal, user=user).first()
        if existing is not None:
            return ChallengeResult(challenge=existing, created=False)
        if proposal.state not in Proposal.LIVE_STATES or now >= proposal.challenge_until:
            raise MarketStateError("This proposal is no longer open to challenge.")
        if not Position.objects.filter(market_id=proposal.market_id, user=user).exists():
            raise NotATrader("Only traders of this market can challenge its proposal.")
        held = system_account(kind=Account.Kind.HELD)
        # The wallet and the held account, locked in id order (after the market), as every posting does.
        accounts = {
            account.key: account
            for account in Account.objects.select_for_update()
            .filter(Q(key=wallet_key(user.pk)) | Q(pk=held.pk))
            .order_by("pk")
        }
        wallet = accounts.get(wallet_key(user.pk))
        if wallet is None or wallet.balance < bond:
            raise InsufficientFunds(
                f"A challenge posts a bond of {bond:.2f} credits; your balance is "
                f"{(wallet.balance if wallet else 0):.2f}.",
                field="bond",
            )
        bond_transaction = ledger_post(
            kind=LedgerTransaction.Kind.BOND,
            entries=[(wallet, -bond), (accounts[held.key], bond)],
            memo=f"Bond for challenging proposal {proposal.pk} on {proposal.market_id}",
            reference=f"bond:{proposal.pk}:{user.pk}",
        )
        challenge = Challenge.objects.create(
            proposal=proposal,
            market_id=proposal.market_id,
            user=user,
            reason=reason,
            bond=bond,
            created_at=now,
            bond_transaction=bond_transaction,
        )
        if proposal.state == Proposal.State.OPEN:
            proposal.state = Proposal.State.CHALLENGED
            proposal.save(update_fields=["state"])
            # Once per proposal: later challengers join a challenge the holders already heard of.
            proposal_notify_enqueue(proposal_id=proposal.pk, event=ProposalEvent.CHALLENGED)
        market_changed(market_id=proposal.market_id)
    return ChallengeResult(challenge=challenge, created=True)


class Decision:
    UPHOLD = "uphold"
    REJECT = "reject"
    CHOICES = (UPHOLD, REJECT)


def challenge_decide(
    *,
    proposal: Proposal,
    user: User | AnonymousUser,
    decision: str,
    note: str,
    now: datetime | None = None,
) -> Proposal:
    """A resolver decides a challenged proposal's challenges, all together.

    Uphold: every bond goes back to its challenger and the proposal is overturned; the market stays
    closed for the resolver's next proposal or direct resolution. Reject: the house keeps every bond and
    the proposal becomes final (its settlement is enqueued). The same decision sent again returns the
    proposal as decided; each bond moves once (unique ledger references)."""
    resolver = resolver_check(user)
    now = now or timezone.now()
    if decision not in Decision.CHOICES:
        raise InvalidInput("Decide uphold or reject.", field="decision")
    note = reason_check(note, what="decision")
    with transaction.atomic():
        market_lock(market_id=proposal.market_id)
        proposal = Proposal.objects.get(pk=proposal.pk)
        decided = Proposal.State.OVERTURNED if decision == Decision.UPHOLD else Proposal.State.FINAL
        if proposal.state == decided and proposal.decided_by_id is not None:
            return proposal
        if proposal.state != Proposal.State.CHALLENGED:
            raise MarketStateError(f"Only a challenged proposal awaits a decision; this one is {proposal.state}.")
        challenges = list(Challenge.objects.filter(proposal=proposal, state=Challenge.State.OPEN).order_by("pk"))
        held = system_account(kind=Account.Kind.HELD)
        house = system_account(kind=Account.Kind.HOUSE)
        if decision == Decision.UPHOLD:
            wallets = dict(
                Account.objects.filter(key__in=[wallet_key(challenge.user_id) for challenge in challenges]).values_list(
                    "user_id", "pk"
                )
            )
            postings = [
                Posting(
                    kind=LedgerTransaction.Kind.BOND_RETURN,
                    reference=f"bond-return:{challenge.pk}",
                    memo=f"Bond returned: challenge {challenge.pk} upheld",
                    entries=[(held.pk, -challenge.bond), (wallets[challenge.user_id], challenge.bond)],
                )
                for challenge in challenges
            ]
        else:
            postings = [
                Posting(
                    kind=LedgerTransaction.Kind.BOND_FORFEIT,
                    reference=f"bond-forfeit:{challenge.pk}",
                    memo=f"Bond kept: challenge {challenge.pk} rejected",
                    entries=[(held.pk, -challenge.bond), (house.pk, challenge.bond)],
                )
                for challenge in challenges
            ]
        if postings:
            posted = ledger_post_set(postings=postings).transactions
            for challenge, ledger_transaction in zip(challenges, posted, strict=True):
                challenge.state = Challenge.State.UPHELD if decision == Decision.UPHOLD else Challenge.State.REJECTED
                challenge.release_transaction = ledger_transaction
                challenge.decided_by = resolver
                challenge.decided_at = now
            Challenge.objects.bulk_update(challenges, ["state", "release_transaction", "decided_by", "decided_at"])
        proposal.decided_by = resolver
        proposal.decided_at = now
        proposal.decision_note = note
        if decision == Decision.UPHOLD:
            proposal.state = Proposal.State.OVERTURNED
            proposal.save(update_fields=["state", "decided_by", "decided_at", "decision_note"])
            market_changed(market_id=proposal.market_id)
        else:
            proposal.save(update_fields=["decided_by", "decided_at", "decision_note"])
            _finalize(proposals=[proposal], now=now)
            proposal.refresh_from_db()
    return proposal
