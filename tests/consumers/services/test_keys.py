"""API keys: drawn with `secrets`, returned once, stored as a prefix and a keyed hash;
rotated with an overlap during which both keys work; revoked idempotently; expired by a
periodic job that publishes each expiry once."""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import AuditEvent, User
from accounts.tokens import keyed_hash
from consumers import services
from consumers.models import ApiKey
from gateway_sync.selectors import config_generation
from tests.consumers.services.scene import Stage, needs_role

KEY_SHAPE = re.compile(r"^sk-[A-Za-z0-9]{48}$")


def gateway_lookup(plaintext: str) -> ApiKey | None:
    """Find a key as the gateway will: by the keyed hash of what the client sent."""
    return ApiKey.objects.filter(key_hash=keyed_hash(plaintext)).first()


def test_a_key_is_returned_once_and_stored_only_as_its_prefix_and_keyed_hash(stage: Stage, member: User) -> None:
    key, plaintext = services.api_key_create(actor=member, app=stage.app, name=" CI deploy ")

    assert KEY_SHAPE.match(plaintext)
    assert (key.name, key.prefix, key.status) == ("CI deploy", plaintext[:11], "active")
    assert key.key_hash == keyed_hash(plaintext)
    # Keyed: a dump alone does not let anyone test guesses against the hash.
    assert key.key_hash != hashlib.sha256(plaintext.encode()).hexdigest()
    for value in ApiKey.objects.filter(pk=key.pk).values().get().values():
        assert plaintext not in str(value)
        assert plaintext[11:] not in str(value)
    assert gateway_lookup(plaintext) == key
    event = AuditEvent.objects.get(action="api_key.create")
    assert event.changes["prefix"] == key.prefix
    assert plaintext[11:] not in str(event.changes)


def test_keys_are_distinct_and_limited_to_the_products_given(stage: Stage, member: User) -> None:
    first, first_plain = services.api_key_create(actor=member, app=stage.app, name="a", products=[stage.product])
    second, second_plain = services.api_key_create(actor=member, app=stage.app, name="b")

    assert first_plain != second_plain
    assert first.prefix != second.prefix
    assert list(first.products.all()) == [stage.product]
    assert list(second.products.all()) == []


@pytest.mark.parametrize(
    ("name", "expires_in", "field", "message"),
    [
        ("  ", None, "name", "Name the key after what will use it."),
        ("ci", dt.timedelta(seconds=-1), "expires_at", "The expiry must be in the future."),
        ("x" * 101, None, "name", "Ensure this value has at most 100 characters (it has 101)."),
    ],
)
def test_a_key_needs_a_name_and_a_future_expiry(
    stage: Stage, member: User, name: str, expires_in: dt.timedelta | None, field: str, message: str
) -> None:
    expires_at = timezone.now() + expires_in if expires_in is not None else None

    with pytest.raises(ValidationError) as caught:
        services.api_key_create(actor=member, app=stage.app, name=name, expires_at=expires_at)

    assert caught.value.message_dict == {field: [message]}
    assert not ApiKey.objects.exists()


def test_outsiders_and_staff_cannot_create_keys(stage: Stage, outsider: User, staff: User) -> None:
    for user in (outsider, staff):
        with pytest.raises(PermissionDenied, match=needs_role("member", "Acme")):
            services.api_key_create(actor=user, app=stage.app, name="ci")


def test_rotation_keeps_the_old_key_working_until_the_end_of_the_overlap(
    stage: Stage, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, old_plain = services.api_key_create(actor=member, app=stage.app, name="ci", products=[stage.product])
    before = timezone.now()

    new, new_plain = services.api_key_rotate(actor=member, key=old, overlap=dt.timedelta(minutes=30))

    old.refresh_from_db()
    assert old.replaced_by == new
    assert old.expires_at is not None
    assert before + dt.timedelta(minutes=30) <= old.expires_at <= timezone.now() + dt.timedelta(minutes=30)
    assert (new.name, new.expires_at, list(new.products.all())) == ("ci", None, [stage.product])
    assert KEY_SHAPE.match(new_plain)
    assert new_plain != old_plain
    # During the overlap both keys are usable, as the gateway finds them.
    assert (gateway_lookup(old_plain), gateway_lookup(new_plain)) == (old, new)
    assert (old.status, old.is_usable, new.status, new.is_usable) == ("rotating", True, "active", True)
    event = AuditEvent.objects.get(action="api_key.rotate")
    assert event.changes == {"old": old.prefix, "new": new.prefix, "old_valid_until": old.expires_at.isoformat()}

    later = old.expires_at + dt.timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)

    assert (old.status, old.is_usable, new.status, new.is_usable) == ("expired", False, "active", True)


def test_rotation_never_extends_a_key_that_expires_sooner_than_the_overlap(stage: Stage, member: User) -> None:
    expiry = timezone.now() + dt.timedelta(minutes=5)
    old, _plain = services.api_key_create(actor=member, app=stage.app, name="ci", expires_at=expiry)

    new, _new_plain = services.api_key_rotate(actor=member, key=old, overlap=dt.timedelta(hours=1))

    old.refresh_from_db()
    assert old.expires_at == expiry
    assert new.expires_at == expiry


def test_an_overlap_of_zero_ends_the_old_key_at_once(stage: Stage, member: User) -> None:
    old, _plain = services.api_key_create(actor=member, app=stage.app, name="ci")

    services.api_key_rotate(actor=member, key=old, overlap=dt.timedelta(0))

    old.refresh_from_db()
    assert old.status == "expired"


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        ("revoked", "This key is revoked; create a new key instead of rotating it."),
        ("rotated", "This key was already rotated; rotate its replacement instead."),
        ("expired", "This key has expired; create a new key instead of rotating it."),
    ],
)
def test_a_revoked_rotated_or_expired_key_cannot_be_rotated(
    stage: Stage, member: User, arrange: str, message: str
) -> None:
    key, _plain = services.api_key_create(actor=member, app=stage.app, name="ci")
    if arrange == "revoked":
        services.api_key_revoke(actor=member, key=key)
    elif arrange == "rotated":
        services.api_key_rotate(actor=member, key=key, overlap=dt.timedelta(hours=1))
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    keys = ApiKey.objects.count()
    generation = config_generation()

    with pytest.raises(ValidationError) as caught:
        services.api_key_rotate(actor=member, key=key)

    assert caught.value.messages == [message]
    assert ApiKey.objects.count() == keys
    assert config_generation() == generation


@pytest.mark.parametrize("overlap", [dt.timedelta(seconds=-1), dt.timedelta(days=7, seconds=1)])
def test_the_overlap_is_at_most_seven_days(stage: Stage, member: User, overlap: dt.timedelta) -> None:
    key, _plain = services.api_key_create(actor=member, app=stage.app, name="ci")

    with pytest.raises(ValidationError) as caught:
        services.api_key_rotate(actor=member, key=key, overlap=overlap)

    assert caught.value.message_dict == {"overlap": ["The overlap window must be between 0 and 7 days."]}
    assert ApiKey.objects.count() == 1


def test_revoking_is_idempotent_and_audited_once(stage: Stage, member: User) -> None:
    key, plaintext = services.api_key_create(actor=member, app=stage.app, name="ci")
    generation = config_generation()

    services.api_key_revoke(actor=member, key=key)
    first_revoked_at = key.revoked_at
    services.api_key_revoke(actor=member, key=key)

    assert key.status == "revoked"
    assert not key.is_usable
    assert key.revoked_at == first_revoked_at
    assert AuditEvent.objects.filter(action="api_key.revoke").count() == 1
    assert config_generation() == generation + 1
    found = gateway_lookup(plaintext)
    assert found is not None
    assert not found.is_usable


def test_expiring_keys_publishes_each_expiry_once_with_one_bump(stage: Stage, member: User) -> None:
    past = timezone.now() - dt.timedelta(seconds=1)
    due = [services.api_key_create(actor=member, app=stage.app, name=f"due {n}")[0] for n in range(3)]
    future, _plain = services.api_key_create(
        actor=member, app=stage.app, name="later", expires_at=timezone.now() + dt.timedelta(days=1)
    )
    forever, _plain = services.api_key_create(actor=member, app=stage.app, name="forever")
    ApiKey.objects.filter(pk__in=[key.pk for key in due]).update(expires_at=past)
    generation = config_generation()

    assert services.api_keys_expire() == 3
    assert config_generation() == generation + 1
    assert set(ApiKey.objects.filter(expiry_published=True).values_list("pk", flat=True)) == {k.pk for k in due}

    assert services.api_keys_expire() == 0
    assert config_generation() == generation + 1
    assert not ApiKey.objects.filter(pk__in=[future.pk, forever.pk], expiry_published=True).exists()


def test_the_end_of_a_rotation_overlap_is_published_by_the_expiry_job(
    stage: Stage, member: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, _plain = services.api_key_create(actor=member, app=stage.app, name="ci")
    services.api_key_rotate(actor=member, key=old, overlap=dt.timedelta(minutes=10))
    generation = config_generation()

    assert services.api_keys_expire() == 0

    later = timezone.now() + dt.timedelta(minutes=11)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert services.api_keys_expire() == 1
    assert config_generation() == generation + 1
