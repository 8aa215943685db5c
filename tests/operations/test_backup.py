"""Backups (tools/backup.py): a dump taken while trades commit restores into a fresh database whose books
reconcile clean and whose every balance equals the original's."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from markets.services import market_resolve, market_settle
from tests.celery_worker import ROOT
from tests.celery_worker import test_database_url as database_url
from tests.markets.settlement_helpers import buy, sell
from tools import backup

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

COMPARED_TABLES = (
    "accounts_account",
    "accounts_ledgerentry",
    "accounts_ledgertransaction",
    "markets_trade",
    "markets_position",
    "markets_payout",
)


def balances(params: dict) -> list[tuple]:
    with psycopg.connect(**params) as db:
        return db.execute("SELECT id, kind, user_id, balance FROM accounts_account ORDER BY id").fetchall()


def row_counts(params: dict) -> dict[str, int]:
    counts = {}
    with psycopg.connect(**params) as db:
        for table in COMPARED_TABLES:
            row = db.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            assert row is not None
            counts[table] = row[0]
    return counts


def drop_database(params: dict, name: str) -> None:
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as db:
        db.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def reconcile(url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test", "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "manage.py", "reconcile"], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture
def restored_url():
    """The URL of a database that does not exist yet, dropped again after the test."""
    source = database_url()
    name = f"{connection.settings_dict['NAME']}_restored"
    url = f"{source.rsplit('/', 1)[0]}/{name}"
    params = backup.connection_params(source)
    drop_database(params, name)
    yield url
    drop_database(params, name)


def test_the_client_tools_match_the_servers_major_version():
    params = backup.connection_params(database_url())
    major = backup.server_major_version(params)
    assert backup.client_version(backup.client_directory(major)) == major


def test_no_client_of_the_servers_version_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(backup, "_candidate_directories", lambda: iter([tmp_path]))
    with pytest.raises(SystemExit, match="No pg_dump/pg_restore of PostgreSQL 99"):
        backup.client_directory(99)


def test_a_dump_taken_while_trading_restores_clean_with_every_balance_equal(
    make_market, make_user, tmp_path, restored_url
):
    staff = make_user("staff", is_staff=True)
    traders = [make_user(f"trader{index}") for index in range(4)]
    settled = make_market("settled", created_by=staff, outcomes=3)
    for index, trader in enumerate(traders):
        buy(trader, settled, f"O{index % 3}", "30")
    sell(traders[0], settled, "O0", "5")
    market_resolve(market=settled, user=staff, kind="outcome", outcome_code="O1", reason="It was O1.")
    assert market_settle(market_id=settled.pk) is not None
    busy = make_market("busy", created_by=staff)

    # Trades keep committing while pg_dump runs: its one snapshot holds each wholly or not at all.
    stop = threading.Event()
    traded: list[int] = []

    def trade_until_stopped() -> None:
        try:
            while not stop.is_set():
                buy(traders[len(traded) % 4], busy, "YES" if len(traded) % 2 else "NO", "1")
                traded.append(1)
        finally:
            connection.close()

    trader_thread = threading.Thread(target=trade_until_stopped)
    trader_thread.start()
    archive = tmp_path / "forecastle.dump"
    try:
        backup.dump(url=database_url(), path=archive)
    finally:
        stop.set()
        trader_thread.join()
    assert traded, "no trade ran during the dump"
    assert archive.stat().st_size > 0

    backup.restore(url=restored_url, path=archive, create=True)

    # The restored books are the books of one instant: clean, by the project's own reconciliation, with
    # the trades before the snapshot and none of those after it.
    result = reconcile(restored_url)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "reconciliation clean" in result.stdout
    source, restored = backup.connection_params(database_url()), backup.connection_params(restored_url)
    trades_after_snapshot = row_counts(source)["markets_trade"] - row_counts(restored)["markets_trade"]
    assert 0 <= trades_after_snapshot <= len(traded)


def test_a_quiet_database_restores_with_every_balance_and_row_equal(make_market, make_user, tmp_path, restored_url):
    staff = make_user("staff", is_staff=True)
    alice, bob = make_user("alice"), make_user("bob")
    market = make_market("quiet", created_by=staff)
    buy(alice, market, "YES", "40")
    buy(bob, market, "NO", "25")
    market_resolve(market=market, user=staff, kind="outcome", outcome_code="YES", reason="Yes.")
    market_settle(market_id=market.pk)
    archive: Path = tmp_path / "quiet.dump"

    backup.dump(url=database_url(), path=archive)
    backup.restore(url=restored_url, path=archive, create=True)

    source, restored = backup.connection_params(database_url()), backup.connection_params(restored_url)
    assert balances(restored) == balances(source)
    assert len(balances(source)) >= 5  # house, mint, escrows and wallets
    assert row_counts(restored) == row_counts(source)
    assert reconcile(restored_url).returncode == 0
    # The check could fail: a balance moved without entries in the restored copy is caught.
    with psycopg.connect(**restored, autocommit=True) as db:
        db.execute("UPDATE accounts_account SET balance = balance + 1 WHERE user_id = %s", [alice.pk])
    broken = reconcile(restored_url)
    assert broken.returncode == 1
    assert "cached_balance_matches_entries" in broken.stdout
