"""Keys through the API: the plaintext is in the response that creates (or rotates to)
a key and in no other; a rotation answers the new key and the old key's new expiry;
refusals are problem documents that say what to do instead; revoking is idempotent."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import User
from accounts.tokens import keyed_hash
from consumers import services
from consumers.models import ApiKey
from gateway_sync.selectors import config_generation
from tests.consumers.api.urls import app_url, key_url
from tests.consumers.services.scene import Stage
from tests.marketplace.api.helpers import Api, assert_problem, ok

KEY_SHAPE = re.compile(r"^sk-[A-Za-z0-9]{48}$")
KEY_FIELDS = {
    "id",
    "name",
    "prefix",
    "status",
    "products",
    "created_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "replaced_by",
    "requests_per_second",
    "requests_per_minute",
    "requests_per_day",
    "requests_per_month",
}


def create_key(api: Api, stage: Stage, **fields: Any) -> dict[str, Any]:
    return ok(api.post(app_url(stage.app.pk, "keys/"), {"name": "ci", **fields}), 201)  # type: ignore[no-any-return]


def when(value: str) -> dt.datetime:
    parsed = parse_datetime(value)
    assert parsed is not None
    return parsed


def test_a_created_key_is_answered_once_and_never_again(stage: Stage, member_api: Api) -> None:
    generation = config_generation()

    body = create_key(member_api, stage, name="CI deploy")

    assert set(body) == KEY_FIELDS | {"key"}
    plaintext = body["key"]
    assert KEY_SHAPE.match(plaintext)
    assert (body["name"], body["prefix"], body["status"], body["products"]) == (
        "CI deploy",
        plaintext[:11],
        "active",
        [],
    )
    stored = ApiKey.objects.get(pk=body["id"])
    assert (stored.prefix, stored.key_hash) == (plaintext[:11], keyed_hash(plaintext))
    assert config_generation() == generation + 1

    listed = member_api.get(app_url(stage.app.pk, "keys/"))
    detail = member_api.get(key_url(stage.app.pk, body["id"]))

    assert set(ok(listed)["results"][0]) == KEY_FIELDS
    assert set(ok(detail)) == KEY_FIELDS
    for response in (listed, detail):
        assert plaintext[3:] not in response.content.decode()


def test_a_key_may_be_limited_to_products_the_app_subscribes_to(stage: Stage, member: User, member_api: Api) -> None:
    services.subscription_request(actor=member, app=stage.app, product=stage.product)

    body = create_key(member_api, stage, products=["weather"])

    assert body["products"] == ["weather"]
    assert list(ApiKey.objects.get(pk=body["id"]).products.values_list("slug", flat=True)) == ["weather"]


@pytest.mark.parametrize("slug", ["internal", "draft-only", "no-such-product", "weather"])
def test_a_key_cannot_name_a_product_the_app_does_not_subscribe_to(stage: Stage, member_api: Api, slug: str) -> None:
    response = member_api.post(app_url(stage.app.pk, "keys/"), {"name": "ci", "products": [slug]})

    body = assert_problem(response, 400, errors=True)
    assert body["errors"] == {"products": [f"Checkout does not subscribe to {slug}."]}
    assert not ApiKey.objects.exists()


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"name": ""}, {"name": ["This field may not be blank."]}),
        ({"name": "   "}, {"name": ["This field may not be blank."]}),
        ({}, {"name": ["This field is required."]}),
        ({"name": "ci", "expires_at": "2001-01-01T00:00:00Z"}, {"expires_at": ["The expiry must be in the future."]}),
        ({"name": "ci", "expires_at": "tomorrow"}, None),
        ({"name": "ci", "scope": "all"}, {"scope": ["Unknown field."]}),
        ({"name": "x" * 101}, {"name": ["Ensure this field has no more than 100 characters."]}),
        ({"name": "a\x00b"}, {"name": ["Null characters are not allowed."]}),
    ],
)
def test_an_invalid_key_request_is_a_400_naming_the_field(
    stage: Stage, member_api: Api, data: dict[str, Any], errors: dict[str, list[str]] | None
) -> None:
    generation = config_generation()

    response = member_api.post(app_url(stage.app.pk, "keys/"), data)

    body = assert_problem(response, 400, errors=True)
    if errors is None:
        assert list(body["errors"]) == ["expires_at"]
    else:
        assert body["errors"] == errors
    assert not ApiKey.objects.exists()
    assert config_generation() == generation


def test_rotating_answers_the_new_key_once_and_the_old_keys_new_expiry(stage: Stage, member_api: Api) -> None:
    old = create_key(member_api, stage)
    before = timezone.now()

    response = member_api.post(key_url(stage.app.pk, old["id"], "rotate/"), {"overlap_seconds": 600})

    body = ok(response, 201)
    assert set(body) == KEY_FIELDS | {"key", "replaces"}
    assert KEY_SHAPE.match(body["key"])
    assert body["key"] != old["key"]
    assert (body["name"], body["status"], body["expires_at"]) == ("ci", "active", None)
    replaced = body["replaces"]
    assert set(replaced) == KEY_FIELDS
    assert (replaced["id"], replaced["status"], replaced["replaced_by"]) == (old["id"], "rotating", body["id"])
    assert (
        before + dt.timedelta(seconds=600) <= when(replaced["expires_at"]) <= timezone.now() + dt.timedelta(seconds=600)
    )
    # Both work during the overlap, as the gateway looks them up.
    for plaintext in (old["key"], body["key"]):
        found = ApiKey.objects.get(key_hash=keyed_hash(plaintext))
        assert found.is_usable
    assert response.content.decode().count(body["key"]) == 1
    assert old["key"] not in response.content.decode()


def test_the_overlap_defaults_to_an_hour(stage: Stage, member_api: Api) -> None:
    old = create_key(member_api, stage)
    before = timezone.now()

    body = ok(member_api.post(key_url(stage.app.pk, old["id"], "rotate/")), 201)

    expiry = when(body["replaces"]["expires_at"])
    assert before + dt.timedelta(hours=1) <= expiry <= timezone.now() + dt.timedelta(hours=1)


@pytest.mark.parametrize("overlap", [-1, 604_801, "a week"])
def test_the_overlap_is_between_zero_and_seven_days(stage: Stage, member_api: Api, overlap: object) -> None:
    old = create_key(member_api, stage)

    response = member_api.post(key_url(stage.app.pk, old["id"], "rotate/"), {"overlap_seconds": overlap})

    body = assert_problem(response, 400, errors=True)
    assert list(body["errors"]) == ["overlap_seconds"]
    assert ApiKey.objects.count() == 1


def test_a_misspelt_overlap_is_refused_rather_than_defaulted(stage: Stage, member_api: Api) -> None:
    old = create_key(member_api, stage)

    response = member_api.post(key_url(stage.app.pk, old["id"], "rotate/"), {"overlap": 0})

    assert assert_problem(response, 400, errors=True)["errors"] == {"overlap": ["Unknown field."]}


@pytest.mark.parametrize(
    ("arrange", "message"),
    [
        ("revoked", "This key is revoked; create a new key instead of rotating it."),
        ("rotated", "This key was already rotated; rotate its replacement instead."),
        ("expired", "This key has expired; create a new key instead of rotating it."),
    ],
)
def test_a_revoked_rotated_or_expired_key_cannot_be_rotated(
    stage: Stage, member_api: Api, arrange: str, message: str
) -> None:
    key = create_key(member_api, stage)
    if arrange == "revoked":
        ok(member_api.post(key_url(stage.app.pk, key["id"], "revoke/")))
    elif arrange == "rotated":
        ok(member_api.post(key_url(stage.app.pk, key["id"], "rotate/")), 201)
    else:
        ApiKey.objects.filter(pk=key["id"]).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    keys, generation = ApiKey.objects.count(), config_generation()

    response = member_api.post(key_url(stage.app.pk, key["id"], "rotate/"), {"overlap_seconds": 60})

    body = assert_problem(response, 400, errors=True)
    assert body["errors"] == {"non_field_errors": [message]}
    assert (ApiKey.objects.count(), config_generation()) == (keys, generation)


@pytest.mark.parametrize("method", ["post", "delete"])
def test_revoking_is_idempotent(stage: Stage, member_api: Api, method: str) -> None:
    key = create_key(member_api, stage)
    generation = config_generation()

    def revoke() -> dict[str, Any]:
        if method == "post":
            return ok(member_api.post(key_url(stage.app.pk, key["id"], "revoke/")))  # type: ignore[no-any-return]
        return ok(member_api.delete(key_url(stage.app.pk, key["id"])))  # type: ignore[no-any-return]

    first = revoke()
    second = revoke()

    assert first["status"] == second["status"] == "revoked"
    assert first["revoked_at"] == second["revoked_at"] is not None
    assert config_generation() == generation + 1
    assert not ApiKey.objects.get(key_hash=keyed_hash(key["key"])).is_usable


def test_a_key_is_found_only_under_its_own_app(stage: Stage, owner: User, member_api: Api) -> None:
    other_app = services.app_create(actor=owner, organization=stage.acme, name="Billing")
    key = create_key(member_api, stage)

    for response in (
        member_api.get(key_url(other_app.pk, key["id"])),
        member_api.post(key_url(other_app.pk, key["id"], "revoke/")),
        member_api.post(key_url(other_app.pk, key["id"], "rotate/")),
        member_api.get(key_url(stage.app.pk, 999_999)),
    ):
        assert assert_problem(response, 404)["code"] == "not_found"
    assert ApiKey.objects.get(pk=key["id"]).status == "active"
