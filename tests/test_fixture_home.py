"""Tests make users and markets one way: the make_user and make_market fixtures of tests/conftest.py.

Only the tests of user_create and market_create themselves (and the ledger and order state machines, for which
making them is a step under test) call the services directly; a helper anywhere else would be a second way."""

import re
from pathlib import Path

TESTS = Path(__file__).resolve().parent
DIRECT_CALL = re.compile(r"\b(market_create|user_create)\(")
CALLERS_UNDER_TEST = {
    "conftest.py",
    "accounts/test_ledger.py",
    "markets/test_trade_service.py",
    "markets/test_trade_validation.py",
    "markets/test_ledger_state_machine.py",
    "markets/test_order_state_machine.py",
}


def test_users_and_markets_come_from_the_fixtures():
    offenders = [
        f"{path.relative_to(TESTS)}:{number}"
        for path in sorted(TESTS.rglob("*.py"))
        if str(path.relative_to(TESTS)) not in CALLERS_UNDER_TEST
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if DIRECT_CALL.search(line) and path != Path(__file__).resolve()
    ]
    assert offenders == []
