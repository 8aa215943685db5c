"""The demo markets' texts live in demo_markets.json beside the demo_data command, which loads them."""

import json
from pathlib import Path

import pytest

from markets.management.commands import demo_data as command


def test_the_market_texts_come_from_the_data_file_beside_the_command():
    assert command.DEMO_MARKETS_FILE.parent == Path(command.__file__).parent
    rutte, next_sg = command.DEMO_MARKETS[:2]
    assert rutte.slug == "rutte-nato-secretary-general"
    assert rutte.outcomes is None
    assert rutte.question.startswith("Will Mark Rutte")
    assert next_sg.outcomes is not None
    assert next_sg.outcomes[0] == ("RUTTE", "Mark Rutte")
    assert len(command.DEMO_MARKETS) == 7


def test_a_market_opening_before_the_demo_history_is_refused(tmp_path):
    entries = json.loads(command.DEMO_MARKETS_FILE.read_text(encoding="utf-8"))
    entries[0]["opened_days_ago"] = command.HISTORY_DAYS + 1
    too_early = tmp_path / "markets.json"
    too_early.write_text(json.dumps(entries), encoding="utf-8")
    with pytest.raises(ValueError, match="outside the 42-day demo history"):
        command.demo_markets_load(too_early)
