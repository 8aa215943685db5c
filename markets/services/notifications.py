"""Market events told to the users they concern, set-based and exactly once.

Each event is one INSERT ... SELECT over positions, payouts and follows (accounts.notifications.
notifications_fan_out), whatever the number of recipients; the event key (e.g. "market_resolved:<resolution>")
and UNIQUE (event_key, recipient) make a retried or duplicated run add nothing.

- resolved: every trader of the market (with what the settlement paid them) and every follower; enqueued by
  the market_settled hook (markets.hooks) once the settlement committed, and swept in case that was lost;
- a resolution proposed, and a proposal challenged: every holder of the market (less whoever acted), once per
  proposal and event; enqueued after the proposal's or the first challenge's commit (`proposal_notify_enqueue`)
  and swept in case that message was lost;
- closing within 24 hours: every holder, once per market and close time (beat, hourly);
- moved 10 points or more in a day: every follower, at most once per market and day (beat, hourly).
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from celery import current_app
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError

from accounts.models import Notification, User
from accounts.notifications import notifications_fan_out
from markets.models import Challenge, Market, MarketFollow, Outcome, Payout, Position, PricePoint, Proposal, Resolution
from markets.selectors.follows import FOLLOWERS_SQL

logger = logging.getLogger(__name__)

FOLLOW = MarketFollow._meta.db_table
PAYOUT = Payout._meta.db_table
POSITION = Position._meta.db_table
MARKET = Market._meta.db_table
OUTCOME = Outcome._meta.db_table
PRICE_POINT = PricePoint._meta.db_table
PROPOSAL = Proposal._meta.db_table
CHALLENGE = Challenge._meta.db_table
NOTIFICATION = Notification._meta.db_table
USER = User._meta.db_table

MOVE_THRESHOLD = 0.10
CLOSING_WITHIN = timedelta(hours=24)

# Every trader of the market with their payout, less a trader who unfollowed it and was paid nothing; then
# the explicit followers who did not trade it (paid is null).
RESOLVED_RECIPIENTS_SQL = f"""
    SELECT po.user_id, po.amount AS paid FROM {PAYOUT} po
    WHERE po.resolution_id = %(resolution)s
      AND (po.amount > 0 OR NOT EXISTS (
          SELECT 1 FROM {FOLLOW} f WHERE f.market_id = %(market)s AND f.user_id = po.user_id AND NOT f.following
      ))
    UNION ALL
    SELECT f.user_id, NULL FROM {FOLLOW} f
    WHERE f.market_id = %(market)s AND f.following
      AND NOT EXISTS (SELECT 1 FROM {PAYOUT} po WHERE po.resolution_id = %(resolution)s AND po.user_id = f.user_id)
"""  # noqa: S608
RESOLVED_PAYLOAD_SQL = """jsonb_build_object(
    'text', CASE WHEN r.paid IS NULL THEN %(headline)s
                 ELSE %(headline)s || %(paid_prefix)s || to_char(r.paid, 'FM999999999999990.00') || ' credits.' END,
    'market', %(slug)s::text,
    'resolution', %(resolution)s::bigint,
    'paid', r.paid::text
)"""


def _short(question: str) -> str:
    return question if len(question) <= 90 else question[:89] + "…"


def _resolution_headline(market: Market, resolution: Resolution) -> tuple[str, str]:
    """The sentence of a resolution, and how the payout follows it."""
    question = f"“{_short(market.question)}”"
    if resolution.kind == Resolution.Kind.ANNULLED:
        return f"{question} was annulled.", " You got back "
    if resolution.kind == Resolution.Kind.OUTCOME and resolution.outcome is not None:
        return f"{question} resolved {resolution.outcome.label}.", " You were paid "
    return f"{question} resolved as a probability split.", " You were paid "


def market_resolved_notify(*, market_id: int, now: datetime | None = None) -> int:
    """Tells the traders and followers of a settled market how it resolved and what they were paid; returns
    how many notifications were new (0 on a second run)."""
    resolution = (
        Resolution.objects.filter(market_id=market_id, is_current=True, state=Resolution.State.SETTLED)
        .select_related("market", "outcome")
        .first()
    )
    if resolution is None:
        return 0
    market = resolution.market
    headline, paid_prefix = _resolution_headline(market, resolution)
    return notifications_fan_out(
        kind=Notification.Kind.MARKET_RESOLVED,
        event_key=f"market_resolved:{resolution.pk}",
        recipients_sql=RESOLVED_RECIPIENTS_SQL,
        params={
            "resolution": resolution.pk,
            "market": market.pk,
            "slug": market.slug,
            "headline": headline,
            "paid_prefix": paid_prefix,
        },
        payload_sql=RESOLVED_PAYLOAD_SQL,
        link=reverse("markets:detail", args=[market.slug]),
        now=now,
    )


def resolutions_unannounced(*, settled_after: datetime, settled_before: datetime) -> list[int]:
    """Markets settled in the window whose traders were never told: the hook's message was lost."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT r.market_id FROM {Resolution._meta.db_table} r
                WHERE r.is_current AND r.state = 'settled'
                  AND r.settled_at > %(after)s AND r.settled_at <= %(before)s
                  AND EXISTS (SELECT 1 FROM {PAYOUT} po WHERE po.resolution_id = r.id)
                  AND NOT EXISTS (
                      SELECT 1 FROM {Notification._meta.db_table} n WHERE n.event_key = 'market_resolved:' || r.id
                  )
                ORDER BY r.market_id""",  # noqa: S608
            {"after": settled_after, "before": settled_before},
        )
        return [row[0] for row in cursor.fetchall()]


def markets_closing_notify(*, now: datetime | None = None) -> int:
    """Tells every holder of each open market that closes within 24 hours, once per market and close time."""
    now = now or timezone.now()
    written = 0
    closing = Market.objects.filter(status=Market.Status.OPEN, closes_at__gt=now, closes_at__lte=now + CLOSING_WITHIN)
    for market in closing.only("pk", "slug", "question", "closes_at"):
        written += notifications_fan_out(
            kind=Notification.Kind.MARKET_CLOSING,
            event_key=f"market_closing:{market.pk}:{int(market.closes_at.timestamp())}",
            recipients_sql=f"SELECT DISTINCT p.user_id FROM {POSITION} p"  # noqa: S608
            " WHERE p.market_id = %(market)s AND p.shares > 0",
            params={
                "market": market.pk,
                "slug": market.slug,
                "text": f"“{_short(market.question)}” closes within 24 hours.",
            },
            payload_sql="jsonb_build_object('text', %(text)s::text, 'market', %(slug)s::text)",
            link=reverse("markets:detail", args=[market.slug]),
            now=now,
        )
    return written


@dataclass(frozen=True)
class Move:
    market_id: int
    outcome_label: str
    before: float
    after: float


def markets_moved(*, now: datetime, threshold: float = MOVE_THRESHOLD) -> list[Move]:
    """Open markets where an outcome's probability is `threshold` or more away from where it stood a day ago
    (the largest move of each), in one query. Moves of the same size (a binary market's two outcomes always
    move alike) name the outcome that rose, then the first: without that, DISTINCT ON took whichever row the
    plan and the table's physical order gave first."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT DISTINCT ON (m.id) m.id, o.label, (old.probabilities ->> o.index)::float8, o.probability
                FROM {MARKET} m
                JOIN LATERAL (
                    SELECT pp.probabilities FROM {PRICE_POINT} pp
                    WHERE pp.market_id = m.id AND pp.created_at <= %(since)s
                    ORDER BY pp.created_at DESC, pp.id DESC LIMIT 1
                ) old ON true
                JOIN {OUTCOME} o ON o.market_id = m.id
                WHERE m.status = 'open'
                  AND abs(o.probability - (old.probabilities ->> o.index)::float8) >= %(threshold)s
                ORDER BY m.id, abs(o.probability - (old.probabilities ->> o.index)::float8) DESC,
                         o.probability - (old.probabilities ->> o.index)::float8 DESC, o.index""",  # noqa: S608
            {"since": now - timedelta(days=1), "threshold": threshold},
        )
        return [Move(market_id, label, before, after) for market_id, label, before, after in cursor.fetchall()]


def markets_moved_notify(*, now: datetime | None = None) -> int:
    """Tells the followers of every market that moved 10 points or more in a day, at most once a day each."""
    now = now or timezone.now()
    written = 0
    moves = markets_moved(now=now)
    markets = Market.objects.in_bulk([move.market_id for move in moves])
    for move in moves:
        market = markets[move.market_id]
        text = (
            f"“{_short(market.question)}” moved: {move.outcome_label} "
            f"{move.before * 100:.0f}% → {move.after * 100:.0f}% in a day."
        )
        written += notifications_fan_out(
            kind=Notification.Kind.MARKET_MOVED,
            event_key=f"market_moved:{market.pk}:{now:%Y-%m-%d}",
            recipients_sql=FOLLOWERS_SQL,
            params={"market": market.pk, "text": text, "slug": market.slug},
            payload_sql="jsonb_build_object('text', %(text)s::text, 'market', %(slug)s::text)",
            link=reverse("markets:detail", args=[market.slug]),
            now=now,
        )
    return written


# Proposals and challenges -------------------------------------------------------------------------------

PROPOSAL_NOTIFY_TASK = "markets.tasks.proposal_notify"


class ProposalEvent:
    PROPOSED = "proposed"
    CHALLENGED = "challenged"
    CHOICES = (PROPOSED, CHALLENGED)


def proposal_event_key(*, proposal_id: int, event: str) -> str:
    return f"resolution_{event}:{proposal_id}"


# The holders of the proposal's market (shares > 0), less the resolver who proposed it and, for a challenge,
# every challenger: they know already.
PROPOSAL_RECIPIENTS_SQL = f"""
    SELECT DISTINCT po.user_id FROM {POSITION} po
    WHERE po.market_id = %(market)s AND po.shares > 0 AND po.user_id <> %(proposer)s
      AND NOT (%(challenged)s AND EXISTS (
          SELECT 1 FROM {CHALLENGE} c WHERE c.proposal_id = %(proposal)s AND c.user_id = po.user_id
      ))
"""  # noqa: S608


def _proposal_text(proposal: Proposal, event: str) -> str:
    question = f"“{_short(proposal.market.question)}”"
    if event == ProposalEvent.CHALLENGED:
        return f"The proposed resolution of {question} ({proposal.summary_label}) was challenged; staff will decide."
    until = proposal.challenge_until.astimezone(UTC)
    return (
        f"A resolution was proposed for {question}: {proposal.summary_label}. "
        f"Challenge it until {until.day} {until:%b %H:%M} UTC if you disagree."
    )


def proposal_notify(*, proposal_id: int, event: str, now: datetime | None = None) -> int:
    """Tells the holders of a proposal's market that it was proposed, or challenged; returns how many
    notifications were new (0 on a second run). A proposal no longer live when this runs (withdrawn, decided,
    final) is not announced: what followed it is."""
    if event not in ProposalEvent.CHOICES:
        raise ValueError(f"unknown proposal event {event!r}")
    live = (Proposal.State.CHALLENGED,) if event == ProposalEvent.CHALLENGED else Proposal.LIVE_STATES
    proposal = Proposal.objects.filter(pk=proposal_id, state__in=live).select_related("market", "outcome").first()
    if proposal is None:
        return 0
    market = proposal.market
    return notifications_fan_out(
        kind=Notification.Kind.RESOLUTION_PROPOSED,
        event_key=proposal_event_key(proposal_id=proposal.pk, event=event),
        recipients_sql=PROPOSAL_RECIPIENTS_SQL,
        params={
            "market": market.pk,
            "proposal": proposal.pk,
            "proposer": proposal.created_by_id,
            "challenged": event == ProposalEvent.CHALLENGED,
            "text": _proposal_text(proposal, event),
            "slug": market.slug,
        },
        payload_sql="""jsonb_build_object(
            'text', %(text)s::text, 'market', %(slug)s::text, 'proposal', %(proposal)s::bigint
        )""",
        link=reverse("markets:detail", args=[market.slug]) + "#proposals",
        now=now,
    )


def proposal_notify_enqueue(*, proposal_id: int, event: str) -> None:
    """After commit, by name (a rollback sends nothing). A message the broker cannot take is not an error for
    the resolver: the proposal is committed and the sweeper (markets.tasks.resolution_notifications_sweep)
    enqueues what was never announced."""
    transaction.on_commit(partial(_proposal_notify_send, proposal_id, event))


def _proposal_notify_send(proposal_id: int, event: str) -> None:
    try:
        current_app.send_task(PROPOSAL_NOTIFY_TASK, args=[proposal_id, event])
    except (KombuOperationalError, RedisError, OSError):
        logger.warning(
            "proposal %s: %s notice not queued, the broker is unreachable; the sweeper will", proposal_id, event
        )


def proposals_unannounced(*, after: datetime, before: datetime) -> list[tuple[int, str]]:
    """Live proposals made (or first challenged) in the window whose holders were never told: the message
    was lost. (proposal id, event) pairs, in id order."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH candidates AS (
                    SELECT p.id, p.market_id, p.created_by_id, 'proposed' AS event, p.created_at AS at
                    FROM {PROPOSAL} p WHERE p.state IN ('open', 'challenged')
                    UNION ALL
                    SELECT p.id, p.market_id, p.created_by_id, 'challenged',
                           (SELECT min(c.created_at) FROM {CHALLENGE} c WHERE c.proposal_id = p.id)
                    FROM {PROPOSAL} p WHERE p.state = 'challenged'
                )
                SELECT k.id, k.event FROM candidates k
                WHERE k.at > %(after)s AND k.at <= %(before)s
                  AND NOT EXISTS (
                      SELECT 1 FROM {NOTIFICATION} n WHERE n.event_key = 'resolution_' || k.event || ':' || k.id
                  )
                  AND EXISTS (
                      SELECT 1 FROM {POSITION} po JOIN {USER} u ON u.id = po.user_id AND u.is_active
                      WHERE po.market_id = k.market_id AND po.shares > 0 AND po.user_id <> k.created_by_id
                        AND NOT (k.event = 'challenged' AND EXISTS (
                            SELECT 1 FROM {CHALLENGE} c WHERE c.proposal_id = k.id AND c.user_id = po.user_id
                        ))
                  )
                ORDER BY k.id, k.event DESC""",  # noqa: S608
            {"after": after, "before": before},
        )
        return [(proposal_id, event) for proposal_id, event in cursor.fetchall()]
