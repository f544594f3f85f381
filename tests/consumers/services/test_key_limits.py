"""A key's own request quotas: optional when the key is created, changed later by whoever
manages the app's keys, checked by the plans' rule (positive, no longer window below a
shorter one), refused on a revoked or expired key, carried over by a rotation; each
change audited and published once."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import AuditEvent, User
from consumers import services
from consumers.models import ApiKey
from gateway_sync.selectors import config_generation
from tests.consumers.services.scene import Stage, needs_role

NONE = dict.fromkeys(ApiKey.REQUEST_WINDOWS)


def test_a_key_is_created_without_quotas_unless_given(stage: Stage, member: User) -> None:
    plain, _ = services.api_key_create(actor=member, app=stage.app, name="plain")
    limited, _ = services.api_key_create(
        actor=member, app=stage.app, name="limited", requests_per_second=5, requests_per_day=10_000
    )

    assert ApiKey.objects.get(pk=plain.pk).limits == NONE
    assert ApiKey.objects.get(pk=limited.pk).limits == NONE | {"requests_per_second": 5, "requests_per_day": 10_000}
    event = AuditEvent.objects.get(action="api_key.create", target_id=str(limited.pk))
    assert (event.changes["requests_per_second"], event.changes["requests_per_day"]) == (5, 10_000)
    assert "requests_per_minute" not in event.changes


BAD_LIMITS = [
    ({"requests_per_minute": 0}, {"requests_per_minute": ["Ensure this value is greater than or equal to 1."]}),
    ({"requests_per_day": -5}, {"requests_per_day": ["Ensure this value is greater than or equal to 1."]}),
    (
        {"requests_per_second": 2**31},
        {"requests_per_second": ["Ensure this value is less than or equal to 2147483647."]},
    ),
    (
        {"requests_per_second": 20, "requests_per_minute": 10},
        {"requests_per_minute": ["The requests per minute limit (10) is below the requests per second limit (20)."]},
    ),
    (
        {"requests_per_second": 20, "requests_per_month": 19},
        {"requests_per_month": ["The requests per month limit (19) is below the requests per second limit (20)."]},
    ),
    (
        {"requests_per_minute": 1.5},
        {"requests_per_minute": ["Give a whole number of requests, or nothing for no quota."]},
    ),
    (
        {"requests_per_minute": "60"},
        {"requests_per_minute": ["Give a whole number of requests, or nothing for no quota."]},
    ),
    (
        {"requests_per_minute": True},
        {"requests_per_minute": ["Give a whole number of requests, or nothing for no quota."]},
    ),
]


@pytest.mark.parametrize(("limits", "errors"), BAD_LIMITS)
def test_a_key_with_bad_quotas_is_not_created(
    stage: Stage, member: User, limits: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    generation = config_generation()

    with pytest.raises(ValidationError) as caught:
        services.api_key_create(actor=member, app=stage.app, name="ci", **limits)

    assert caught.value.message_dict == errors
    assert not ApiKey.objects.exists()
    assert config_generation() == generation


@pytest.mark.parametrize(("limits", "errors"), BAD_LIMITS)
def test_bad_quotas_change_nothing(
    stage: Stage, member: User, limits: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")
    generation, events = config_generation(), AuditEvent.objects.count()

    with pytest.raises(ValidationError) as caught:
        services.api_key_limits_update(actor=member, key=key, **limits)

    assert caught.value.message_dict == errors
    assert ApiKey.objects.get(pk=key.pk).limits == NONE
    assert (config_generation(), AuditEvent.objects.count()) == (generation, events)


def test_quotas_are_changed_audited_and_published_once(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci", requests_per_second=5)
    generation = config_generation()

    updated = services.api_key_limits_update(actor=member, key=key, requests_per_minute=120, requests_per_day=None)

    assert updated.limits == NONE | {"requests_per_second": 5, "requests_per_minute": 120}
    assert ApiKey.objects.get(pk=key.pk).limits == updated.limits
    assert config_generation() == generation + 1
    event = AuditEvent.objects.get(action="api_key.limits_update")
    assert (event.actor, event.organization, event.target_id) == (member, stage.acme, str(key.pk))
    assert event.changes == {"prefix": key.prefix, "requests_per_minute": [None, 120]}


def test_a_quota_set_to_none_is_removed_and_absent_ones_stay(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(
        actor=member, app=stage.app, name="ci", requests_per_second=5, requests_per_month=1_000_000
    )

    services.api_key_limits_update(actor=member, key=key, requests_per_second=None)

    assert ApiKey.objects.get(pk=key.pk).limits == NONE | {"requests_per_month": 1_000_000}
    event = AuditEvent.objects.get(action="api_key.limits_update")
    assert event.changes == {"prefix": key.prefix, "requests_per_second": [5, None]}


def test_setting_the_same_quotas_records_and_publishes_nothing(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci", requests_per_minute=60)
    generation = config_generation()

    services.api_key_limits_update(actor=member, key=key, requests_per_minute=60)
    services.api_key_limits_update(actor=member, key=key)

    assert config_generation() == generation
    assert not AuditEvent.objects.filter(action="api_key.limits_update").exists()


def test_a_new_quota_is_checked_against_the_ones_the_key_keeps(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci", requests_per_minute=600)

    with pytest.raises(ValidationError) as caught:
        services.api_key_limits_update(actor=member, key=key, requests_per_day=100)

    assert caught.value.message_dict == {
        "requests_per_day": ["The requests per day limit (100) is below the requests per minute limit (600)."]
    }
    assert ApiKey.objects.get(pk=key.pk).requests_per_day is None


def test_an_unknown_quota_is_refused(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")

    with pytest.raises(ValidationError) as caught:
        services.api_key_limits_update(actor=member, key=key, requests_per_hour=10)

    assert caught.value.messages == ["Unknown key limits: requests_per_hour."]


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        ("revoked", "This key is revoked; create a new key instead of changing its quotas."),
        ("expired", "This key has expired; create a new key instead of changing its quotas."),
    ],
)
def test_the_quotas_of_a_revoked_or_expired_key_cannot_change(
    stage: Stage, member: User, arrange: str, message: str
) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")
    if arrange == "revoked":
        services.api_key_revoke(actor=member, key=key)
    else:
        ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    generation = config_generation()

    with pytest.raises(ValidationError) as caught:
        services.api_key_limits_update(actor=member, key=key, requests_per_minute=60)

    assert caught.value.messages == [message]
    assert ApiKey.objects.get(pk=key.pk).requests_per_minute is None
    assert config_generation() == generation


def test_a_key_revoked_meanwhile_is_refused(stage: Stage, member: User) -> None:
    """The service reads the key again under a lock: a stale copy does not let a change through."""
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")
    stale = ApiKey.objects.get(pk=key.pk)
    services.api_key_revoke(actor=member, key=key)

    with pytest.raises(ValidationError, match="This key is revoked"):
        services.api_key_limits_update(actor=member, key=stale, requests_per_minute=60)


def test_a_rotating_key_may_still_change_its_quotas(stage: Stage, member: User) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")
    services.api_key_rotate(actor=member, key=key)

    services.api_key_limits_update(actor=member, key=key, requests_per_minute=60)

    assert ApiKey.objects.get(pk=key.pk).requests_per_minute == 60


@pytest.mark.parametrize("persona", ["owner", "admin_member", "member"])
def test_the_organizations_members_may_change_quotas(
    stage: Stage, member: User, persona: str, request: pytest.FixtureRequest
) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")

    services.api_key_limits_update(actor=request.getfixturevalue(persona), key=key, requests_per_minute=60)

    assert ApiKey.objects.get(pk=key.pk).requests_per_minute == 60


@pytest.mark.parametrize("persona", ["outsider", "staff"])
def test_outsiders_and_staff_cannot_change_quotas(
    stage: Stage, member: User, persona: str, request: pytest.FixtureRequest
) -> None:
    key, _ = services.api_key_create(actor=member, app=stage.app, name="ci")
    generation = config_generation()

    with pytest.raises(PermissionDenied, match=needs_role("member", "Acme")):
        services.api_key_limits_update(actor=request.getfixturevalue(persona), key=key, requests_per_minute=60)

    assert ApiKey.objects.get(pk=key.pk).requests_per_minute is None
    assert config_generation() == generation
    assert not AuditEvent.objects.filter(action="api_key.limits_update").exists()


def test_outsiders_and_staff_cannot_create_keys_with_quotas(stage: Stage, outsider: User, staff: User) -> None:
    for user in (outsider, staff):
        with pytest.raises(PermissionDenied, match=needs_role("member", "Acme")):
            services.api_key_create(actor=user, app=stage.app, name="ci", requests_per_minute=60)
    assert not ApiKey.objects.exists()


def test_rotation_keeps_the_quotas(stage: Stage, member: User) -> None:
    old, _ = services.api_key_create(
        actor=member, app=stage.app, name="ci", requests_per_second=2, requests_per_minute=60, requests_per_month=9_000
    )

    new, _ = services.api_key_rotate(actor=member, key=old)

    expected = {
        "requests_per_second": 2,
        "requests_per_minute": 60,
        "requests_per_day": None,
        "requests_per_month": 9_000,
    }
    assert ApiKey.objects.get(pk=new.pk).limits == expected
    assert ApiKey.objects.get(pk=old.pk).limits == expected
