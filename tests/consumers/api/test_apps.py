"""Apps through the API: created in an organization the user belongs to, listed per
user (and per organization), renamed, and deleted, which stops their keys and ends their
subscriptions."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent, User
from consumers import services
from consumers.models import ApiKey, ConsumerApp, Subscription
from gateway_sync.selectors import config_generation
from tests.consumers.api.urls import app_url, apps_url
from tests.consumers.services.scene import Stage
from tests.marketplace.api.helpers import Api, assert_problem, ok

APP_FIELDS = {"id", "organization", "name", "description", "environment", "created_at"}


def test_a_member_creates_an_app(stage: Stage, member: User, member_api: Api) -> None:
    body = ok(
        member_api.post(
            apps_url(),
            {"organization": "acme", "name": " Billing ", "description": "Invoices.", "environment": "staging"},
        ),
        201,
    )

    assert set(body) == APP_FIELDS
    assert (body["organization"], body["name"], body["description"], body["environment"]) == (
        "acme",
        "Billing",
        "Invoices.",
        "staging",
    )
    app = ConsumerApp.objects.get(pk=body["id"])
    assert (app.created_by, app.organization) == (member, stage.acme)
    assert AuditEvent.objects.filter(action="app.create", target_id=str(app.pk), actor=member).exists()


def test_the_environment_defaults_to_development(stage: Stage, member_api: Api) -> None:
    body = ok(member_api.post(apps_url(), {"organization": "acme", "name": "Billing"}), 201)

    assert (body["environment"], body["description"]) == ("development", "")


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        ({"organization": "acme", "name": ""}, {"name": ["This field may not be blank."]}),
        (
            {"organization": "acme", "name": "Billing", "environment": "qa"},
            {"environment": ['"qa" is not a valid choice.']},
        ),
        ({"organization": "acme", "name": "Billing", "owner": "me"}, {"owner": ["Unknown field."]}),
        ({"name": "Billing"}, {"organization": ["This field is required."]}),
    ],
)
def test_an_invalid_app_is_a_400_naming_the_field(
    stage: Stage, member_api: Api, data: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    body = assert_problem(member_api.post(apps_url(), data), 400, errors=True)

    assert body["errors"] == errors
    assert ConsumerApp.objects.count() == 1


def test_an_app_cannot_be_created_in_an_organization_one_does_not_belong_to(stage: Stage, outsider_api: Api) -> None:
    body = assert_problem(outsider_api.post(apps_url(), {"organization": "acme", "name": "Mine"}), 404)

    assert body["code"] == "not_found"


def test_each_user_lists_the_apps_of_their_organizations(stage: Stage, outsider: User, outsider_api: Api) -> None:
    theirs = services.app_create(actor=outsider, organization=outsider.memberships.get().organization, name="Theirs")
    services.app_create(actor=stage.provider.owner, organization=stage.provider.organization, name="Radar")

    assert [a["name"] for a in ok(outsider_api.get(apps_url()))["results"]] == ["Theirs"]
    assert ok(outsider_api.get(apps_url(), {"organization": "other"}))["results"][0]["id"] == theirs.pk
    assert assert_problem(outsider_api.get(apps_url(), {"organization": "acme"}), 404)["code"] == "not_found"


def test_staff_list_every_app_and_filter_by_organization(stage: Stage, staff_api: Api) -> None:
    services.app_create(actor=stage.provider.owner, organization=stage.provider.organization, name="Radar")

    everything = ok(staff_api.get(apps_url()))
    weather_co = ok(staff_api.get(apps_url(), {"organization": "weatherco"}))

    assert [(a["name"], a["organization"]) for a in everything["results"]] == [
        ("Checkout", "acme"),
        ("Radar", "weatherco"),
    ]
    assert [a["name"] for a in weather_co["results"]] == ["Radar"]


def test_a_member_edits_an_app(stage: Stage, member_api: Api) -> None:
    body = ok(member_api.patch(app_url(stage.app.pk), {"name": "Checkout v2", "environment": "staging"}))

    assert (body["name"], body["environment"], body["description"]) == ("Checkout v2", "staging", "")
    event = AuditEvent.objects.get(action="app.update")
    assert event.changes == {"name": "Checkout v2", "environment": "staging"}


@pytest.mark.parametrize("how", ["create", "rename"])
def test_two_apps_of_an_organization_cannot_share_a_name(stage: Stage, owner: User, member_api: Api, how: str) -> None:
    services.app_create(actor=owner, organization=stage.acme, name="Billing")

    if how == "create":
        response = member_api.post(apps_url(), {"organization": "acme", "name": "Billing"})
    else:
        response = member_api.patch(app_url(stage.app.pk), {"name": "Billing"})

    body = assert_problem(response, 400, errors=True)
    assert body["errors"] == {"name": ["Acme already has an app named 'Billing'."]}
    assert sorted(ConsumerApp.objects.values_list("name", flat=True)) == ["Billing", "Checkout"]


def test_the_organization_of_an_app_never_changes(stage: Stage, member_api: Api) -> None:
    body = assert_problem(member_api.patch(app_url(stage.app.pk), {"organization": "other"}), 400, errors=True)

    assert body["errors"] == {"organization": ["Unknown field."]}


def test_deleting_an_app_stops_its_keys_and_ends_its_subscriptions(stage: Stage, member: User, admin_api: Api) -> None:
    key, _plaintext = services.api_key_create(actor=member, app=stage.app, name="ci")
    subscription = services.subscription_request(actor=member, app=stage.app, product=stage.product)
    generation = config_generation()

    response = admin_api.delete(app_url(stage.app.pk))

    assert response.status_code == 204
    assert not ConsumerApp.objects.filter(pk=stage.app.pk).exists()
    assert not ApiKey.objects.filter(pk=key.pk).exists()
    assert not Subscription.objects.filter(pk=subscription.pk).exists()
    assert config_generation() == generation + 1
    event = AuditEvent.objects.get(action="app.delete")
    assert event.changes == {"name": "Checkout", "keys_revoked": 1, "subscriptions_cancelled": 1}
    assert assert_problem(admin_api.get(app_url(stage.app.pk)), 404)["code"] == "not_found"


def test_an_unknown_app_is_a_404(stage: Stage, member_api: Api) -> None:
    assert assert_problem(member_api.get(app_url(999_999)), 404)["code"] == "not_found"
