"""A key's quotas through the API: shown on every key, optional when creating one, set by
PATCH on the key (absent fields stay, null removes a quota); bad values are problem
documents naming the field; a revoked key's quotas do not change. (Who may: the role
matrix in test_permissions.py.)"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.utils import timezone

from accounts.models import AuditEvent, User
from consumers import services
from consumers.models import ApiKey
from gateway_sync.selectors import config_generation
from tests.consumers.api.test_keys import create_key
from tests.consumers.api.urls import app_url, key_url
from tests.consumers.services.scene import Stage
from tests.marketplace.api.helpers import Api, assert_problem, ok

QUOTAS = ("requests_per_second", "requests_per_minute", "requests_per_day", "requests_per_month")
NONE = dict.fromkeys(QUOTAS)


def quotas(body: dict[str, Any]) -> dict[str, Any]:
    return {field: body[field] for field in QUOTAS}


def test_a_key_is_created_with_the_quotas_given_and_none_otherwise(stage: Stage, member_api: Api) -> None:
    plain = create_key(member_api, stage, name="plain")
    limited = create_key(member_api, stage, name="limited", requests_per_second=5, requests_per_day=None)

    assert quotas(plain) == NONE
    assert quotas(limited) == NONE | {"requests_per_second": 5}
    listed = {k["name"]: k for k in ok(member_api.get(app_url(stage.app.pk, "keys/")))["results"]}
    assert quotas(listed["limited"]) == NONE | {"requests_per_second": 5}
    assert quotas(ok(member_api.get(key_url(stage.app.pk, limited["id"])))) == NONE | {"requests_per_second": 5}


def test_patch_sets_the_quotas_given_and_keeps_the_others(stage: Stage, member_api: Api) -> None:
    key = create_key(member_api, stage, requests_per_second=5, requests_per_month=1_000_000)
    generation = config_generation()

    body = ok(
        member_api.patch(key_url(stage.app.pk, key["id"]), {"requests_per_minute": 120, "requests_per_second": None})
    )

    assert quotas(body) == NONE | {"requests_per_minute": 120, "requests_per_month": 1_000_000}
    assert (body["id"], body["status"], body["prefix"]) == (key["id"], "active", key["prefix"])
    assert "key" not in body
    assert ApiKey.objects.get(pk=key["id"]).limits == quotas(body)
    assert config_generation() == generation + 1
    event = AuditEvent.objects.get(action="api_key.limits_update")
    assert event.changes == {
        "prefix": key["prefix"],
        "requests_per_second": [5, None],
        "requests_per_minute": [None, 120],
    }


def test_an_empty_patch_changes_nothing(stage: Stage, member_api: Api) -> None:
    key = create_key(member_api, stage, requests_per_minute=60)
    generation = config_generation()

    body = ok(member_api.patch(key_url(stage.app.pk, key["id"]), {}))

    assert quotas(body) == NONE | {"requests_per_minute": 60}
    assert config_generation() == generation


BAD = [
    ({"requests_per_minute": 0}, {"requests_per_minute": ["Ensure this value is greater than or equal to 1."]}),
    ({"requests_per_minute": -1}, {"requests_per_minute": ["Ensure this value is greater than or equal to 1."]}),
    ({"requests_per_day": 2**31}, {"requests_per_day": ["Ensure this value is less than or equal to 2147483647."]}),
    ({"requests_per_minute": "sixty"}, {"requests_per_minute": ["A valid integer is required."]}),
    ({"requests_per_minute": 1.5}, {"requests_per_minute": ["A valid integer is required."]}),
    ({"requests_per_minute": True}, {"requests_per_minute": ["A valid integer is required."]}),
    ({"requests_per_hour": 10}, {"requests_per_hour": ["Unknown field."]}),
    (
        {"requests_per_second": 20, "requests_per_minute": 10},
        {"requests_per_minute": ["The requests per minute limit (10) is below the requests per second limit (20)."]},
    ),
]


@pytest.mark.parametrize(("data", "errors"), BAD)
def test_bad_quotas_on_create_are_a_400_naming_the_field(
    stage: Stage, member_api: Api, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    generation = config_generation()

    response = member_api.post(app_url(stage.app.pk, "keys/"), {"name": "ci", **data})

    assert assert_problem(response, 400, errors=True)["errors"] == errors
    assert not ApiKey.objects.exists()
    assert config_generation() == generation


@pytest.mark.parametrize(("data", "errors"), BAD)
def test_bad_quotas_on_patch_are_a_400_naming_the_field(
    stage: Stage, member_api: Api, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    key = create_key(member_api, stage)
    generation = config_generation()

    response = member_api.patch(key_url(stage.app.pk, key["id"]), data)

    assert assert_problem(response, 400, errors=True)["errors"] == errors
    assert ApiKey.objects.get(pk=key["id"]).limits == NONE
    assert config_generation() == generation


def test_a_quota_below_one_the_key_keeps_is_a_400(stage: Stage, member_api: Api) -> None:
    key = create_key(member_api, stage, requests_per_minute=600)

    response = member_api.patch(key_url(stage.app.pk, key["id"]), {"requests_per_day": 100})

    assert assert_problem(response, 400, errors=True)["errors"] == {
        "requests_per_day": ["The requests per day limit (100) is below the requests per minute limit (600)."]
    }


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        ("revoked", "This key is revoked; create a new key instead of changing its quotas."),
        ("expired", "This key has expired; create a new key instead of changing its quotas."),
    ],
)
def test_the_quotas_of_a_revoked_or_expired_key_cannot_change(
    stage: Stage, member_api: Api, arrange: str, message: str
) -> None:
    key = create_key(member_api, stage)
    if arrange == "revoked":
        ok(member_api.post(key_url(stage.app.pk, key["id"], "revoke/")))
    else:
        ApiKey.objects.filter(pk=key["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    generation = config_generation()

    response = member_api.patch(key_url(stage.app.pk, key["id"]), {"requests_per_minute": 60})

    assert assert_problem(response, 400, errors=True)["errors"] == {"non_field_errors": [message]}
    assert ApiKey.objects.get(pk=key["id"]).requests_per_minute is None
    assert config_generation() == generation


def test_rotation_answers_the_new_key_with_the_old_keys_quotas(stage: Stage, member_api: Api) -> None:
    key = create_key(member_api, stage, requests_per_second=3, requests_per_day=5_000)

    body = ok(member_api.post(key_url(stage.app.pk, key["id"], "rotate/")), 201)

    assert quotas(body) == quotas(body["replaces"]) == NONE | {"requests_per_second": 3, "requests_per_day": 5_000}


def test_a_key_of_another_app_is_not_found_for_patch(stage: Stage, member_api: Api, owner: User) -> None:
    other = services.app_create(actor=owner, organization=stage.acme, name="Billing")
    key = create_key(member_api, stage)

    response = member_api.patch(key_url(other.pk, key["id"]), {"requests_per_minute": 60})

    assert assert_problem(response, 404)["code"] == "not_found"
    assert ApiKey.objects.get(pk=key["id"]).requests_per_minute is None
