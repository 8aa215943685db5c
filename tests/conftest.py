"""The one home of the fixtures every test may use: users, markets, and a cache of each test's own.

Users and markets are made through the services (user_create, market_create), so every one obeys the
ledger invariants: `make_user(...)` and `make_market(...)`, nothing else."""

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from itertools import count
from typing import Any

import pytest
from django.utils import timezone
from redis.connection import AbstractConnection

# Loads the Hypothesis profile (ci or quick) before any test module is collected.
import tests.hypothesis_profiles  # noqa: F401
from accounts.models import User
from accounts.services import user_create
from markets.models import Market
from markets.services import market_create

MakeUser = Callable[..., User]
MakeMarket = Callable[..., Market]

NATO_CANDIDATES = [
    ("RUTTE", "Rutte"),
    ("KALLAS", "Kallas"),
    ("RINKEVICS", "Rinkevics"),
    ("IOHANNIS", "Iohannis"),
    ("OTHER", "Other"),
]


@pytest.fixture
def make_user(db: None) -> MakeUser:
    """A user with the sign-up grant in their wallet: make_user(), make_user("ana"), make_user(is_staff=True)."""
    counter = count(1)

    def make(
        username: str | None = None,
        *,
        is_staff: bool = False,
        password: str = "a-long-password",
        is_superuser: bool | None = None,
    ) -> User:
        # Staff are superusers unless told otherwise: they hold every permission (resolve_market too).
        return user_create(
            username=username or f"user{next(counter)}",
            password=password,
            is_staff=is_staff,
            is_superuser=is_staff if is_superuser is None else is_superuser,
        )

    return make


@pytest.fixture
def make_market(db: None) -> MakeMarket:
    """An open market, binary (YES/NO) at even odds and closing in 30 days unless told otherwise.

    `outcomes` is a number (codes O0, O1, ... labelled "Outcome 0", ...) or (code, label) pairs; more than two
    make a multiple-choice market, and kind="multiple" alone gives NATO_CANDIDATES. Any other keyword goes to
    market_create (open_now=False for a draft, created_by, initial_probabilities, category, ...)."""
    counter = count(1)

    def make(
        slug: str | None = None,
        *,
        question: str | None = None,
        outcomes: int | Sequence[tuple[str, str]] | None = None,
        liquidity: object = 100,
        closes_at: datetime | None = None,
        now: datetime | None = None,
        **extra: Any,
    ) -> Market:
        slug = slug or f"market-{next(counter)}"
        pairs = [(f"O{i}", f"Outcome {i}") for i in range(outcomes)] if isinstance(outcomes, int) else outcomes
        kind = extra.pop("kind", Market.Kind.MULTIPLE if pairs is not None and len(pairs) > 2 else Market.Kind.BINARY)
        if kind == Market.Kind.MULTIPLE and pairs is None:
            pairs = NATO_CANDIDATES
        return market_create(
            slug=slug,
            question=question or f"Will {slug} happen?",
            kind=kind,
            outcomes=pairs,
            liquidity=liquidity,
            closes_at=closes_at or (now or timezone.now()) + timedelta(days=30),
            now=now,
            **extra,
        )

    return make


@pytest.fixture(autouse=True)
def isolated_cache(settings: Any) -> Callable[[], None]:
    """Every test gets a cache key prefix of its own, inside the test run's Redis namespace
    (TEST_REDIS_NAMESPACE), so cached prices and throttle counters never leak between tests, or between
    parallel workers sharing one Redis. Call the fixture's value for a fresh, empty cache within a test
    (never cache.clear(), which would empty more than this test's keys)."""

    def renew() -> None:
        prefix = f"{settings.TEST_REDIS_NAMESPACE}-{uuid.uuid4().hex}"
        settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": prefix}}

    renew()
    return renew


def redis_command_names(packed: bytes) -> list[str]:
    """The names of the commands in one write to Redis (RESP arrays of bulk strings, as they are packed)."""
    names, position = [], 0
    while position < len(packed):
        header_end = packed.index(b"\r\n", position)
        count = int(packed[position + 1 : header_end])
        position = header_end + 2
        for index in range(count):
            length_end = packed.index(b"\r\n", position)
            length = int(packed[position + 1 : length_end])
            if index == 0:
                names.append(packed[length_end + 2 : length_end + 2 + length].decode().upper())
            position = length_end + 2 + length + 2
    return names


@pytest.fixture
def redis_writes(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every write to Redis from here on, as the names of the commands it holds: one write is one round trip
    (every command, pipeline and script call goes through send_packed_command)."""
    sent: list[list[str]] = []
    original = AbstractConnection.send_packed_command

    def recording(self: AbstractConnection, command: Any, check_health: bool = True) -> None:
        chunks = [command] if isinstance(command, bytes | str) else command
        sent.append(redis_command_names(b"".join(c.encode() if isinstance(c, str) else c for c in chunks)))
        original(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", recording)
    return sent
