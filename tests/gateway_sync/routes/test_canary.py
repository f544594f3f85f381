"""Canary releases: start by weight, header or apps; change the weight; promote to 100%
or roll back in one step; the history outlives each canary."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from consumers.models import ConsumerApp
from gateway_sync import services_routes as services
from gateway_sync.models_routes import Canary, CanaryEvent
from tests.factories import OrganizationFactory
from tests.gateway_sync.routes.conftest import nothing_recorded, recorded_once

pytestmark = pytest.mark.django_db


def history(route) -> list[tuple[str, str]]:
    return [(e.kind, e.target_name) for e in route.canary_events.order_by("pk")]


def test_a_weight_canary_is_started_changed_and_promoted_with_its_history(staff, route, primary, candidate):
    with recorded_once("canary.started"):
        services.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=10)
    with recorded_once("canary.weight_changed"):
        services.canary_set_weight(actor=staff, route=route, weight=25)
    with nothing_recorded():
        services.canary_set_weight(actor=staff, route=route, weight=25)
    with recorded_once("canary.promoted"):
        services.canary_promote(actor=staff, route=route)

    primary.refresh_from_db()
    candidate.refresh_from_db()
    assert (candidate.weight, primary.weight) == (100, 0), "the old target stays, without traffic"
    assert not Canary.objects.filter(route=route).exists()
    assert history(route) == [("started", "candidate"), ("weight_changed", "candidate"), ("promoted", "candidate")]
    promoted = route.canary_events.get(kind="promoted")
    assert promoted.actor == staff
    assert promoted.from_state["weights"] == {"primary": 100, "candidate": 0}
    assert promoted.from_state["canary"]["weight"] == 25
    assert promoted.to_state == {"weights": {"primary": 0, "candidate": 100}}
    weight_change = route.canary_events.get(kind="weight_changed")
    assert (weight_change.from_state, weight_change.to_state) == ({"weight": 10}, {"weight": 25})


def test_rolling_back_leaves_the_weights_as_they_were(staff, route, primary, candidate):
    services.canary_start(
        actor=staff, route=route, target=candidate, mode="header", header_name="X-Canary", header_value="1"
    )
    with recorded_once("canary.rolled_back"):
        services.canary_rollback(actor=staff, route=route)
    primary.refresh_from_db()
    candidate.refresh_from_db()
    assert (primary.weight, candidate.weight) == (100, 0)
    assert not Canary.objects.filter(route=route).exists()
    assert history(route) == [("started", "candidate"), ("rolled_back", "candidate")]
    assert route.canary_events.get(kind="rolled_back").from_state["canary"]["header_name"] == "X-Canary"


def test_an_apps_canary_names_existing_apps(staff, route, candidate):
    app = ConsumerApp.objects.create(organization=OrganizationFactory(), name="Beta tester")
    with pytest.raises(ValidationError) as excinfo:
        services.canary_start(actor=staff, route=route, target=candidate, mode="apps", app_ids=[app.pk, 987_654])
    assert excinfo.value.message_dict == {"app_ids": ["No app with id 987654."]}
    canary = services.canary_start(actor=staff, route=route, target=candidate, mode="apps", app_ids=[app.pk])
    assert canary.app_ids == [app.pk]


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"mode": "weight", "weight": 101}, "weight", "less than or equal to 100"),
        ({"mode": "header", "header_value": "1"}, "header_name", "Name the header that selects the canary."),
        ({"mode": "header", "header_name": "X-Canary"}, "header_value", "Give the header value"),
        ({"mode": "header", "header_name": "Authorization", "header_value": "x"}, "header_name", "carries credentials"),
        ({"mode": "apps"}, "app_ids", "List the apps whose requests go to the canary."),
        ({"mode": "sometimes"}, "mode", "is not a valid choice"),
    ],
)
def test_bad_canaries_are_refused_precisely(staff, route, candidate, fields, field, message):
    with nothing_recorded(), pytest.raises(ValidationError) as excinfo:
        services.canary_start(actor=staff, route=route, target=candidate, **fields)
    assert any(message in m for m in excinfo.value.message_dict[field]), excinfo.value.message_dict
    assert not CanaryEvent.objects.exists()


def test_a_target_that_already_takes_traffic_cannot_be_the_canary(staff, route, primary):
    with pytest.raises(ValidationError) as excinfo:
        services.canary_start(actor=staff, route=route, target=primary, mode="weight", weight=10)
    assert "add it with weight 0" in excinfo.value.message_dict["target"][0]


def test_one_canary_at_a_time_and_its_target_is_protected(staff, route, candidate):
    services.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=10)
    with nothing_recorded():
        with pytest.raises(ValidationError, match="already has a canary"):
            services.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=20)
        with pytest.raises(ValidationError, match="Promote the canary or roll it back first"):
            services.target_remove(actor=staff, target=candidate)
        with pytest.raises(ValidationError) as excinfo:
            services.target_update(actor=staff, target=candidate, weight=50)
        assert "the canary sets its share" in excinfo.value.message_dict["weight"][0]


def test_promoting_or_rolling_back_needs_a_canary(staff, route):
    with nothing_recorded():
        for call in (services.canary_promote, services.canary_rollback):
            with pytest.raises(ValidationError, match=r"The route has no canary\."):
                call(actor=staff, route=route)


def test_the_weight_of_a_header_canary_cannot_be_set(staff, route, candidate):
    services.canary_start(
        actor=staff, route=route, target=candidate, mode="header", header_name="X-C", header_value="on"
    )
    with pytest.raises(ValidationError) as excinfo:
        services.canary_set_weight(actor=staff, route=route, weight=50)
    assert excinfo.value.message_dict == {"weight": ["This canary selects requests with a header value, not a weight."]}


def test_the_history_outlives_the_target(staff, route, primary, candidate):
    services.canary_start(actor=staff, route=route, target=candidate, mode="weight", weight=5)
    services.canary_rollback(actor=staff, route=route)
    services.target_remove(actor=staff, target=candidate)
    assert history(route) == [("started", "candidate"), ("rolled_back", "candidate")]
    assert route.canary_events.filter(target__isnull=True).count() == 2
