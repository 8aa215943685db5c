import pytest

from accounts.models import User
from accounts.services import user_create


@pytest.fixture
def make_user(db):
    counter = iter(range(1, 1_000_000))

    def make(username: str | None = None, *, is_staff: bool = False, password: str = "a-long-password") -> User:
        return user_create(
            username=username or f"user{next(counter)}",
            password=password,
            is_staff=is_staff,
            is_superuser=is_staff,
        )

    return make


@pytest.fixture
def isolated_cache(settings):
    """A cache key prefix of this test's own, so cached prices and throttle counters never leak
    between tests (or between parallel workers sharing one Redis)."""
    import uuid

    settings.CACHES = {
        "default": {**settings.CACHES["default"], "KEY_PREFIX": f"{settings.TEST_REDIS_NAMESPACE}-{uuid.uuid4().hex}"},
    }
