"""The demo markets live in demo_markets.json beside the demo_data command: real questions with coherent
dates, a path of belief through the news, and a cited source for every resolution."""

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from markets.management.commands import demo_data as command

# The day the demo data's history runs up to: open markets ask about what is still ahead of it.
DEMO_TODAY = datetime(2026, 11, 30, tzinfo=UTC)


def test_the_markets_come_from_the_data_file_beside_the_command():
    assert command.DEMO_MARKETS_FILE.parent == Path(command.__file__).parent
    rutte, next_sg = command.DEMO_MARKETS[:2]
    assert rutte.slug == "rutte-nato-secretary-general"
    assert rutte.outcomes is None
    assert rutte.question == "Will Mark Rutte be appointed NATO Secretary-General by 1 July 2024?"
    assert next_sg.outcomes is not None
    assert next_sg.outcomes[0] == ("RUTTE", "Mark Rutte")


def test_rutte_opens_in_late_2023_and_resolves_yes_on_26_june_2024():
    rutte, next_sg = command.DEMO_MARKETS[:2]
    for spec in (rutte, next_sg):
        assert datetime(2023, 9, 1, tzinfo=UTC) < spec.opens_at < datetime(2024, 1, 1, tzinfo=UTC)
        assert spec.resolution is not None
        assert spec.resolution.at.date().isoformat() == "2024-06-26"
    assert rutte.resolution is not None
    assert next_sg.resolution is not None
    assert (rutte.resolution.kind, rutte.resolution.outcome) == ("outcome", "YES")
    assert (next_sg.resolution.kind, next_sg.resolution.outcome) == ("outcome", "RUTTE")
    news = " ".join(point.news for point in rutte.path)
    for event in ("United States", "Hungary", "Slovakia", "Iohannis withdraws"):
        assert event in news


def test_every_resolution_cites_a_source_and_falls_in_2024_to_2026():
    resolved = [spec for spec in command.DEMO_MARKETS if spec.resolution is not None]
    assert len(resolved) >= 8
    assert len({spec.category for spec in resolved}) >= 4
    for spec in resolved:
        assert spec.resolution is not None
        assert spec.resolution.source.startswith("https://")
        assert datetime(2024, 1, 1, tzinfo=UTC) <= spec.resolution.at < DEMO_TODAY
        assert spec.opens_at < spec.resolution.at <= spec.closes_at or spec.closes_at < spec.resolution.at


def test_open_markets_ask_about_what_is_still_ahead():
    open_ones = [spec for spec in command.DEMO_MARKETS if spec.resolution is None]
    assert len(open_ones) >= 4
    assert "rutte-still-secretary-general-2028" in {spec.slug for spec in open_ones}
    for spec in open_ones:
        assert spec.opens_at < DEMO_TODAY < spec.closes_at


def test_the_loader_refuses_a_resolution_without_a_source_and_a_path_out_of_order(tmp_path):
    entries = json.loads(command.DEMO_MARKETS_FILE.read_text(encoding="utf-8"))
    unsourced = json.loads(json.dumps(entries))
    unsourced[0]["resolution"]["source"] = "a friend told me"
    path = tmp_path / "unsourced.json"
    path.write_text(json.dumps(unsourced), encoding="utf-8")
    with pytest.raises(ValueError, match="cites its source"):
        command.demo_markets_load(path)
    backwards = json.loads(json.dumps(entries))
    backwards[0]["path"].reverse()
    path = tmp_path / "backwards.json"
    path.write_text(json.dumps(backwards), encoding="utf-8")
    with pytest.raises(ValueError, match="path"):
        command.demo_markets_load(path)
