"""The daily public dataset of resolved markets: one zip of CSV files, built by beat (markets.tasks.dataset_build).

A dataset holds every market whose resolution is settled (resolved or annulled), with:
- markets.csv: slug, question, description, resolution criteria, category, kind, times, liquidity b, volume,
  and the resolution (kind, winning outcome, payout per share of each outcome);
- outcomes.csv: each outcome's code, label, opening and final probability;
- trades.csv: every trade, the trader shown only as a pseudonym per market (markets.selectors.exports);
- prices.csv: every price point (the opening and one per trade), probabilities in outcome order.
Rows are written to the zip as they are read from the database (server-side cursors), so building it takes
memory for one chunk of rows, not for the dataset. The file is written under a temporary name and renamed
when complete, so a reader never lists a half-written dataset; the newest DATASETS_KEEP are kept.
"""

import csv
import io
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from markets.models import Outcome
from markets.selectors.exports import (
    current_resolution,
    iso,
    market_price_rows,
    market_trade_rows,
    payouts_json,
    resolved_markets,
)

DATASET_NAME = re.compile(r"^forecastle-resolved-(\d{4}-\d{2}-\d{2})\.zip$")
README = """Forecastle: resolved markets, {day}

markets.csv   one row per market whose resolution is settled (resolved or annulled); payouts is JSON,
              credits paid per share of each outcome (empty when annulled: traders got their net cost back)
outcomes.csv  each market's outcomes with their opening and final probability
trades.csv    every trade; trader is a pseudonym, stable within one market and different across markets
prices.csv    every price point (the opening, then one per trade); probabilities is a JSON list in the
              order of the market's outcomes (outcomes.csv, index)
Times are ISO 8601 in UTC; credits and shares are decimals with six places.
"""


@dataclass(frozen=True)
class Dataset:
    name: str
    day: date
    size: int
    created_at: datetime
    path: Path


def datasets_directory() -> Path:
    return Path(settings.FORECASTLE_DATASETS_DIR)


def _csv_lines(header: list[str], rows: Iterable[Iterable[object]]) -> Iterator[bytes]:
    """The CSV text of `rows` under `header`, in pieces of a few hundred rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for number, row in enumerate(rows, start=1):
        writer.writerow(row)
        if number % 500 == 0:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


def _market_rows() -> Iterator[list[object]]:
    for market in resolved_markets():
        resolution = current_resolution(market_id=market.pk)
        codes = [outcome.code for outcome in sorted(market.outcomes.all(), key=lambda outcome: outcome.index)]
        yield [
            market.slug,
            market.question,
            market.description,
            market.resolution_criteria,
            market.category,
            market.kind,
            market.status,
            iso(market.opens_at),
            iso(market.closes_at),
            iso(market.closed_at),
            iso(market.resolved_at),
            str(market.liquidity),
            str(market.volume),
            resolution.kind if resolution else "",
            resolution.outcome.code if resolution and resolution.outcome else "",
            payouts_json(resolution, codes),
        ]


def _outcome_rows(markets: list[tuple[int, str]]) -> Iterator[list[object]]:
    slugs = dict(markets)
    rows = (
        Outcome.objects.filter(market_id__in=list(slugs))
        .order_by("market_id", "index")
        .values_list("market_id", "index", "code", "label", "initial_probability", "probability")
    )
    for market_id, index, code, label, initial, final in rows:
        yield [slugs[market_id], index, code, label, initial, final]


def _trade_rows(markets: list[tuple[int, str]]) -> Iterator[list[object]]:
    for market_id, slug in markets:
        for trade in market_trade_rows(market_id=market_id):
            yield [
                slug,
                trade["id"],
                trade["time"],
                trade["outcome"],
                trade["side"],
                trade["shares"],
                trade["amount"],
                trade["trader"],
            ]


def _price_rows(markets: list[tuple[int, str]]) -> Iterator[list[object]]:
    for market_id, slug in markets:
        for point in market_price_rows(market_id=market_id):
            yield [slug, point["time"], point["trade_id"] or "", json.dumps(point["probabilities"])]


def _write(archive: zipfile.ZipFile, name: str, pieces: Iterable[bytes]) -> None:
    with archive.open(name, "w", force_zip64=True) as entry:
        for piece in pieces:
            entry.write(piece)


def dataset_build(*, now: datetime | None = None, keep: int | None = None) -> Dataset:
    """Writes today's dataset (replacing one built earlier the same day) and drops all but the newest `keep`."""
    now = now or timezone.now()
    day = now.astimezone(UTC).date()
    directory = datasets_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"forecastle-resolved-{day.isoformat()}.zip"
    partial = directory / f".{path.name}.{os.getpid()}.partial"
    markets = [(market.pk, market.slug) for market in resolved_markets()]
    try:
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("README.txt", README.format(day=day.isoformat()))
            market_header = [
                "market",
                "question",
                "description",
                "resolution_criteria",
                "category",
                "kind",
                "status",
                "opens_at",
                "closes_at",
                "closed_at",
                "resolved_at",
                "liquidity",
                "volume",
                "resolution_kind",
                "resolution_outcome",
                "payouts",
            ]
            _write(archive, "markets.csv", _csv_lines(market_header, _market_rows()))
            outcome_header = ["market", "index", "code", "label", "initial_probability", "final_probability"]
            _write(archive, "outcomes.csv", _csv_lines(outcome_header, _outcome_rows(markets)))
            trade_header = ["market", "trade_id", "time", "outcome", "side", "shares", "amount", "trader"]
            _write(archive, "trades.csv", _csv_lines(trade_header, _trade_rows(markets)))
            price_header = ["market", "time", "trade_id", "probabilities"]
            _write(archive, "prices.csv", _csv_lines(price_header, _price_rows(markets)))
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    for stale in datasets_list()[keep if keep is not None else settings.FORECASTLE_DATASETS_KEEP :]:
        stale.path.unlink(missing_ok=True)
    return _dataset(path)


def _dataset(path: Path) -> Dataset:
    match = DATASET_NAME.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a dataset's name")
    stat = path.stat()
    return Dataset(
        name=path.name,
        day=date.fromisoformat(match.group(1)),
        size=stat.st_size,
        created_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
        path=path,
    )


def datasets_list() -> list[Dataset]:
    """The datasets on disk, newest first."""
    directory = datasets_directory()
    if not directory.is_dir():
        return []
    found = [_dataset(path) for path in directory.iterdir() if DATASET_NAME.match(path.name) and path.is_file()]
    return sorted(found, key=lambda dataset: dataset.day, reverse=True)


def dataset_get(*, name: str) -> Dataset | None:
    """The dataset of that exact file name, or None: the name is matched, never joined into a path unchecked."""
    if not DATASET_NAME.match(name):
        return None
    return next((dataset for dataset in datasets_list() if dataset.name == name), None)
