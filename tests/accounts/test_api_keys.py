"""API keys: shown once, stored only as a hash, revocable, and only an active user's key authenticates."""

import hashlib
from datetime import timedelta

import pytest
from django.core.cache import caches
from redis.exceptions import ConnectionError as RedisConnectionError

from accounts.errors import InvalidInput
from accounts.models import ApiKey
from accounts.services import api_key_authenticate, api_key_create, api_key_revoke, user_password_changed

pytestmark = pytest.mark.django_db


def key_user(raw_key):
    """The user a raw key authenticates, or None."""
    authenticated = api_key_authenticate(raw_key=raw_key)
    return authenticated.user if authenticated else None


def test_a_new_key_is_returned_once_and_stored_as_its_hash(make_user):
    user = make_user()
    api_key, raw_key = api_key_create(user=user, name="  my bot  ")
    assert raw_key.startswith("fc_")
    assert len(raw_key) > 40
    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.name == "my bot"
    assert stored.hashed_key == hashlib.sha256(raw_key.encode()).hexdigest()
    assert raw_key not in {stored.hashed_key, stored.prefix, stored.name}
    assert raw_key.startswith(stored.prefix)
    assert stored.is_active


def test_two_keys_differ(make_user):
    user = make_user()
    assert api_key_create(user=user, name="a")[1] != api_key_create(user=user, name="b")[1]


@pytest.mark.parametrize("name", ["", "   "])
def test_a_key_needs_a_name(make_user, name):
    with pytest.raises(InvalidInput) as error:
        api_key_create(user=make_user(), name=name)
    assert error.value.field == "name"
    assert ApiKey.objects.count() == 0


def test_the_key_authenticates_its_user_and_records_the_use(make_user):
    user = make_user()
    api_key, raw_key = api_key_create(user=user, name="bot")
    assert key_user(raw_key) == user
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at is not None


@pytest.mark.parametrize("wrong", ["", "fc_", "fc_not-a-key", "prefix-only"])
def test_a_wrong_key_authenticates_nobody(make_user, wrong):
    api_key_create(user=make_user(), name="bot")
    assert api_key_authenticate(raw_key=wrong) is None


def test_a_revoked_key_no_longer_authenticates_and_revoking_twice_keeps_the_first_time(make_user):
    user = make_user()
    api_key, raw_key = api_key_create(user=user, name="bot")
    _other, other_raw = api_key_create(user=user, name="other")
    revoked = api_key_revoke(api_key=api_key)
    first_time = revoked.revoked_at
    assert first_time is not None
    assert not revoked.is_active
    assert api_key_revoke(api_key=ApiKey.objects.get(pk=api_key.pk)).revoked_at == first_time
    assert api_key_authenticate(raw_key=raw_key) is None
    assert key_user(other_raw) == user  # only that key was revoked


def test_an_inactive_users_key_authenticates_nobody(make_user):
    user = make_user()
    _api_key, raw_key = api_key_create(user=user, name="bot")
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert api_key_authenticate(raw_key=raw_key) is None


def test_last_use_is_written_at_most_once_a_minute(make_user, django_assert_num_queries, monkeypatch):
    api_key, raw_key = api_key_create(user=make_user(), name="bot")
    api_key_authenticate(raw_key=raw_key)
    first_use = ApiKey.objects.get(pk=api_key.pk).last_used_at
    assert first_use is not None
    with django_assert_num_queries(0):  # from the key cache, and no write
        api_key_authenticate(raw_key=raw_key)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == first_use
    later = first_use + timedelta(minutes=2)
    monkeypatch.setattr("accounts.services.timezone.now", lambda: later)
    api_key_authenticate(raw_key=raw_key)
    assert ApiKey.objects.get(pk=api_key.pk).last_used_at == later


def test_a_key_is_remembered_and_forgotten_as_soon_as_it_is_revoked(make_user, django_assert_num_queries):
    user = make_user()
    api_key, raw_key = api_key_create(user=user, name="bot")
    assert key_user(raw_key) == user
    with django_assert_num_queries(0):
        assert key_user(raw_key) == user
    api_key_revoke(api_key=api_key)
    assert api_key_authenticate(raw_key=raw_key) is None


def test_a_password_change_forgets_every_remembered_key(make_user):
    user = make_user()
    keys = [api_key_create(user=user, name=name)[1] for name in ("a", "b")]
    for raw_key in keys:
        assert key_user(raw_key) == user
    assert user_password_changed(user=user) == 2
    assert [api_key_authenticate(raw_key=raw_key) for raw_key in keys] == [None, None]


def test_keys_authenticate_from_the_database_when_redis_is_down(make_user, monkeypatch):
    user = make_user()
    _api_key, raw_key = api_key_create(user=user, name="bot")

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("down")

    # Patched on the cache object itself, not through django.core.cache.cache (a proxy that resolves to
    # whichever object the cache handler holds when the patch is undone, after the test's cache is reset).
    monkeypatch.setattr(caches["default"], "get", unreachable)
    monkeypatch.setattr(caches["default"], "set", unreachable)
    assert key_user(raw_key) == user
    assert api_key_authenticate(raw_key="fc_unknown") is None
