"""Backups of the PostgreSQL database: a consistent dump, and a restore into a fresh database.

    python -m tools.backup dump FILE                      # pg_dump of DATABASE_URL, custom format
    python -m tools.backup restore FILE --to URL          # into the (new, empty) database at URL
    python -m tools.backup restore FILE --to URL --create # creates that database first

The dump is consistent without stopping anything: pg_dump reads every table in one transaction from one
snapshot, so trades committing meanwhile are either wholly in it or wholly out. After a restore,
`python manage.py reconcile` (with DATABASE_URL pointing at the restored database) checks every invariant.

pg_dump and pg_restore must be of the server's major version: pg_dump refuses a server newer than itself,
and an archive written by a newer pg_dump cannot be read by an older pg_restore (nor is its SQL always
accepted by an older server). The machine may hold several: Debian's PostgreSQL 15 client in
/usr/lib/postgresql/15/bin, the 16 of the embedded `pgserver` wheel. The one matching the server is used
(PG_BIN_DIR, if set, is tried first); see docs/operations.md.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dj_database_url
import psycopg
from psycopg import sql


def connection_params(url: str) -> dict[str, Any]:
    """libpq keywords from a database URL (dj-database-url reads it as the settings do, Unix sockets included)."""
    config: dict[str, Any] = dict(dj_database_url.parse(url))
    keywords = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST", "port": "PORT"}
    return {keyword: config[key] for keyword, key in keywords.items() if config.get(key)}


def server_major_version(params: dict[str, Any]) -> int:
    with psycopg.connect(**params, connect_timeout=10) as connection:
        number = connection.execute("SHOW server_version_num").fetchone()
    assert number is not None
    return int(number[0]) // 10000


def _candidate_directories() -> Iterator[Path]:
    if os.environ.get("PG_BIN_DIR"):
        yield Path(os.environ["PG_BIN_DIR"])
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    try:
        import pgserver

        yield Path(pgserver.__file__).parent / "pginstall" / "bin"
    except ImportError:
        pass
    on_path = shutil.which("pg_dump")
    if on_path:
        yield Path(on_path).resolve().parent


def client_version(directory: Path) -> int | None:
    program = directory / "pg_dump"
    if not program.is_file():
        return None
    output = subprocess.run([str(program), "--version"], capture_output=True, text=True, check=False).stdout
    found = re.search(r"\) (\d+)", output) or re.search(r"(\d+)\.\d+", output)
    return int(found.group(1)) if found else None


def client_directory(major: int) -> Path:
    """The directory of the pg_dump/pg_restore whose major version is the server's."""
    seen: dict[Path, int | None] = {}
    for directory in _candidate_directories():
        if directory in seen:
            continue
        seen[directory] = client_version(directory)
        if seen[directory] == major and (directory / "pg_restore").is_file():
            return directory
    found = ", ".join(f"{path} ({version})" for path, version in seen.items() if version) or "none"
    raise SystemExit(
        f"No pg_dump/pg_restore of PostgreSQL {major} (the server's version) was found; found: {found}. "
        f"Install postgresql-client-{major} or set PG_BIN_DIR."
    )


def _environment(params: dict[str, Any]) -> dict[str, str]:
    """The password travels in PGPASSWORD, never on a command line other users can read."""
    environment = dict(os.environ)
    if params.get("password"):
        environment["PGPASSWORD"] = str(params["password"])
    return environment


def _conninfo(params: dict[str, Any]) -> str:
    return psycopg.conninfo.make_conninfo(**{key: value for key, value in params.items() if key != "password"})


def dump(*, url: str, path: Path) -> Path:
    """One consistent custom-format archive of the whole database (schema and data), written to `path`."""
    params = connection_params(url)
    directory = client_directory(server_major_version(params))
    subprocess.run(
        [
            str(directory / "pg_dump"),
            "--format=custom",
            "--no-owner",
            "--no-privileges",
            f"--file={path}",
            f"--dbname={_conninfo(params)}",
        ],
        env=_environment(params),
        check=True,
    )
    return directory


def database_create(*, url: str) -> None:
    """Creates the empty database named in `url`, connecting to the server's `postgres` database."""
    params = connection_params(url)
    name = params["dbname"]
    with psycopg.connect(**{**params, "dbname": "postgres"}, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def restore(*, url: str, path: Path, create: bool = False) -> Path:
    """Restores the archive into the database at `url`, all or nothing (one transaction)."""
    if create:
        database_create(url=url)
    params = connection_params(url)
    directory = client_directory(server_major_version(params))
    subprocess.run(
        [
            str(directory / "pg_restore"),
            "--no-owner",
            "--no-privileges",
            "--exit-on-error",
            "--single-transaction",
            f"--dbname={_conninfo(params)}",
            str(path),
        ],
        env=_environment(params),
        check=True,
    )
    return directory


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.backup", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    dump_parser = commands.add_parser("dump", help="pg_dump DATABASE_URL (or --from URL) to FILE")
    dump_parser.add_argument("file", type=Path)
    dump_parser.add_argument("--from", dest="source", default=os.environ.get("DATABASE_URL"))
    restore_parser = commands.add_parser("restore", help="pg_restore FILE into the database at --to URL")
    restore_parser.add_argument("file", type=Path)
    restore_parser.add_argument("--to", dest="target", required=True)
    restore_parser.add_argument("--create", action="store_true", help="create the database first")
    arguments = parser.parse_args(argv)
    if arguments.command == "dump":
        if not arguments.source:
            parser.error("set DATABASE_URL or pass --from URL")
        directory = dump(url=arguments.source, path=arguments.file)
        print(f"dumped to {arguments.file} with {directory / 'pg_dump'}")
    else:
        directory = restore(url=arguments.target, path=arguments.file, create=arguments.create)
        print(f"restored {arguments.file} with {directory / 'pg_restore'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
