"""Roll-up of price candles: completed buckets of price points, precomputed for the history read.

Each (market, interval) keeps a watermark row (PriceCandleWatermark): every price point with an id up
to `last_point_id` is reflected in the PriceCandle rows, except in buckets from `pending_from` on,
which were still open when those points were seen. A run recomputes, in one statement, every
completed bucket that holds a point past the watermark (a trade dated in the past lands in an old
bucket, so ids decide, not times) or that was pending and has since completed, and moves the
watermark in the same statement, so candles and watermark always agree.

Runs are idempotent (a bucket is recomputed from all its points, never incremented) and safe at
once: each run locks the watermark rows it works on and skips those another run holds.

Points of voided trades count in no candle (markets.selectors.prices.standing_price_points). Voiding undoes trades
whose points may already be rolled up: `candles_invalidate` drops those candles and moves the watermarks back,
so the read and the next run recompute them without the voided points.
"""

from collections.abc import Collection
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from markets.selectors.prices import BUCKET_ORIGIN, INTERVALS

# Watermark rows for markets with price points and no row yet (drafts have no points).
WATERMARKS_ENSURE_SQL = """
INSERT INTO markets_pricecandlewatermark (market_id, "interval", last_point_id, pending_from)
SELECT m.id, s.name, 0, NULL
FROM markets_market m CROSS JOIN unnest(%(names)s::text[]) AS s(name)
WHERE (%(every_market)s OR m.id = ANY(%(market_ids)s))
  AND EXISTS (SELECT 1 FROM markets_pricepoint pp WHERE pp.market_id = m.id)
  AND NOT EXISTS (
      SELECT 1 FROM markets_pricecandlewatermark w WHERE w.market_id = m.id AND w."interval" = s.name
  )
ON CONFLICT (market_id, "interval") DO NOTHING
"""

# The watermarks with work to do (new points, or a pending bucket now complete), locked; rows another
# run holds are skipped, so concurrent runs share the work instead of queueing on it.
WATERMARKS_LOCK_SQL = """
SELECT w.id
FROM markets_pricecandlewatermark w
JOIN unnest(%(names)s::text[], %(steps)s::interval[]) AS s(name, step) ON s.name = w."interval"
WHERE (%(every_market)s OR w.market_id = ANY(%(market_ids)s))
  AND (
      w.pending_from + s.step <= %(now)s
      -- The market's newest point id: one probe of the (market, id) index.
      OR (SELECT max(pp.id) FROM markets_pricepoint pp WHERE pp.market_id = w.market_id) > w.last_point_id
  )
ORDER BY w.id
FOR UPDATE OF w SKIP LOCKED
"""

ROLL_UP_SQL = """
WITH marks AS (
    SELECT w.id, w.market_id, w."interval", s.step, w.last_point_id, w.pending_from,
           COALESCE(w.pending_from + s.step <= %(now)s, false) AS pending_complete
    FROM markets_pricecandlewatermark w
    JOIN unnest(%(names)s::text[], %(steps)s::interval[]) AS s(name, step) ON s.name = w."interval"
    WHERE w.id = ANY(%(mark_ids)s)
),
-- Points not yet reflected: past the watermark, or in buckets that were pending and have completed.
-- Per watermark (LATERAL) and ordered like an index, so each is one index range whatever the estimates.
seen AS (
    SELECT m.id AS mark_id, newer.id AS point_id, date_bin(m.step, newer.created_at, %(origin)s) AS bucket
    FROM marks m
    CROSS JOIN LATERAL (
        SELECT pp.id, pp.created_at FROM markets_pricepoint pp
        WHERE pp.market_id = m.market_id AND pp.id > m.last_point_id
        ORDER BY pp.id
    ) newer
    UNION
    SELECT m.id, pending.id, date_bin(m.step, pending.created_at, %(origin)s)
    FROM marks m
    CROSS JOIN LATERAL (
        SELECT pp.id, pp.created_at FROM markets_pricepoint pp
        WHERE pp.market_id = m.market_id AND pp.created_at >= m.pending_from
        ORDER BY pp.created_at
    ) pending
    WHERE m.pending_complete
),
dirty AS (
    SELECT DISTINCT m.market_id, m."interval", m.step, s.bucket
    FROM seen s JOIN marks m ON m.id = s.mark_id
    WHERE s.bucket + m.step <= %(now)s
),
-- The points of each dirty bucket: one index range per market and interval over the span its dirty
-- buckets cover, then matched to them by equality. Materialized, so the planner cannot turn it into a
-- range scan per dirty bucket (a day of minute buckets would rescan the day 1,440 times).
spans AS (
    SELECT market_id, "interval", step, min(bucket) AS first_bucket, max(bucket) + step AS span_end
    FROM dirty GROUP BY market_id, "interval", step
),
span_points AS MATERIALIZED (
    SELECT sp.market_id, sp."interval", date_bin(sp.step, pp.created_at, %(origin)s) AS bucket,
           pp.created_at, pp.id, pp.probabilities
    FROM spans sp
    CROSS JOIN LATERAL (
        SELECT pp.created_at, pp.id, pp.probabilities FROM markets_pricepoint pp
        WHERE pp.market_id = sp.market_id AND pp.created_at >= sp.first_bucket AND pp.created_at < sp.span_end
          AND NOT EXISTS (
              SELECT 1 FROM markets_trade voided WHERE voided.id = pp.trade_id AND voided.voided_at IS NOT NULL
          )
        ORDER BY pp.created_at
    ) pp
),
points AS (
    SELECT sp.market_id, sp."interval", sp.bucket, sp.created_at, sp.id,
           element.ordinality - 1 AS idx, element.value::float8 AS p
    FROM span_points sp
    JOIN dirty d ON d.market_id = sp.market_id AND d."interval" = sp."interval" AND d.bucket = sp.bucket
    CROSS JOIN LATERAL jsonb_array_elements_text(sp.probabilities) WITH ORDINALITY AS element(value, ordinality)
),
-- Open, high, low and close as the on-the-fly read computes them (markets.selectors.prices).
per_outcome AS (
    SELECT market_id, "interval", bucket, idx,
           (array_agg(p ORDER BY created_at, id))[1] AS open,
           max(p) AS high,
           min(p) AS low,
           (array_agg(p ORDER BY created_at DESC, id DESC))[1] AS close,
           count(*) AS point_count
    FROM points GROUP BY market_id, "interval", bucket, idx
),
written AS (
    INSERT INTO markets_pricecandle (market_id, "interval", bucket_start, open, high, low, close, point_count)
    SELECT market_id, "interval", bucket,
           array_agg(open ORDER BY idx), array_agg(high ORDER BY idx),
           array_agg(low ORDER BY idx), array_agg(close ORDER BY idx), max(point_count)
    FROM per_outcome GROUP BY market_id, "interval", bucket
    ON CONFLICT (market_id, "interval", bucket_start) DO UPDATE
    SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
        point_count = EXCLUDED.point_count
    RETURNING 1
),
advanced AS (
    UPDATE markets_pricecandlewatermark w
    SET last_point_id = a.through, pending_from = a.pending_from
    FROM (
        SELECT m.id,
               GREATEST(m.last_point_id, max(s.point_id)) AS through,
               -- The earliest bucket still open: a pending one not rescanned, or one just seen.
               LEAST(
                   CASE WHEN m.pending_complete THEN NULL ELSE m.pending_from END,
                   min(s.bucket) FILTER (WHERE s.bucket + m.step > %(now)s)
               ) AS pending_from
        FROM marks m LEFT JOIN seen s ON s.mark_id = m.id
        GROUP BY m.id, m.last_point_id, m.pending_from, m.pending_complete
    ) a
    WHERE w.id = a.id
    RETURNING 1
)
SELECT (SELECT count(*) FROM written), (SELECT count(*) FROM advanced)
"""

# Voiding: the market's candles from the bucket holding `from` on are stale (they count points of trades now
# voided). They go, and each watermark moves back before the first point of those buckets, so the read serves
# them from the points (without the voided ones) and the next run rolls them up again. Watermarks are locked
# first, as a run locks them: a run under way finishes first, and a later one finds them moved.
INVALIDATE_SQL = """
WITH marks AS (
    SELECT w.id, w.market_id, w."interval", date_bin(s.step, %(from)s, %(origin)s) AS from_bucket
    FROM markets_pricecandlewatermark w
    JOIN unnest(%(names)s::text[], %(steps)s::interval[]) AS s(name, step) ON s.name = w."interval"
    WHERE w.market_id = %(market)s
    ORDER BY w.id
    FOR UPDATE OF w
),
dropped AS (
    DELETE FROM markets_pricecandle c USING marks m
    WHERE c.market_id = m.market_id AND c."interval" = m."interval" AND c.bucket_start >= m.from_bucket
    RETURNING 1
)
UPDATE markets_pricecandlewatermark w
SET last_point_id = LEAST(w.last_point_id, first_point.id - 1)
FROM marks m
CROSS JOIN LATERAL (
    SELECT min(pp.id) AS id FROM markets_pricepoint pp
    WHERE pp.market_id = m.market_id AND pp.created_at >= m.from_bucket
) first_point
WHERE w.id = m.id AND first_point.id IS NOT NULL
RETURNING (SELECT count(*) FROM dropped)
"""


def candles_roll_up(*, now: datetime | None = None, market_ids: Collection[int] | None = None) -> int:
    """Writes every completed candle changed since the last run (of the given markets, else of all);
    returns how many candle rows it wrote."""
    parameters: dict[str, Any] = {
        "now": now or timezone.now(),
        "origin": BUCKET_ORIGIN,
        "names": list(INTERVALS),
        "steps": list(INTERVALS.values()),
        "every_market": market_ids is None,
        "market_ids": list(market_ids or []),
    }
    with connection.cursor() as cursor:
        # Its own commit: rows created here are then visible to (and lockable by) every other run.
        cursor.execute(WATERMARKS_ENSURE_SQL, parameters)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(WATERMARKS_LOCK_SQL, parameters)
        mark_ids = [mark_id for (mark_id,) in cursor.fetchall()]
        if not mark_ids:
            return 0
        # The planner cannot know how few points are new, and compiling the statement (JIT) would cost
        # more than running it.
        cursor.execute("SET LOCAL jit = off")
        cursor.execute(ROLL_UP_SQL, {**parameters, "mark_ids": mark_ids})
        written, _advanced = cursor.fetchone() or (0, 0)
    return int(written)


def candles_invalidate(*, market_id: int, moment: datetime) -> None:
    """Drops the market's rolled-up candles from the bucket holding `moment` on, and moves its watermarks back
    (INVALIDATE_SQL): voiding calls it, inside the settlement's transaction, for the trades after `moment`."""
    parameters: dict[str, Any] = {
        "market": market_id,
        "from": moment,
        "origin": BUCKET_ORIGIN,
        "names": list(INTERVALS),
        "steps": list(INTERVALS.values()),
    }
    with connection.cursor() as cursor:
        cursor.execute(INVALIDATE_SQL, parameters)
