"""Routes and targets through the services: validation that says precisely what is wrong
and saves nothing, one generation bump and one audit event per change, staff only."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.models import AuditEvent
from gateway_sync import services_routes as services
from gateway_sync.models_routes import Route, RouteTarget
from gateway_sync.selectors import config_generation
from marketplace.crypto import secret_decrypt
from tests.gateway_sync.routes.conftest import METADATA_URL, UPSTREAM, nothing_recorded, recorded_once
from tests.marketplace.factories import ProductVersionFactory

pytestmark = pytest.mark.django_db


def errors_of(excinfo: pytest.ExceptionInfo[ValidationError]) -> dict[str, list[str]]:
    return excinfo.value.message_dict


# --- Who may ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["owner", "member", "outsider"])
def test_only_staff_govern_traffic(request, persona, rest_product, route, primary):
    user = request.getfixturevalue(persona)
    calls = [
        lambda: services.route_create(actor=user, product=rest_product, name="x", path_prefix="/x"),
        lambda: services.route_update(actor=user, route=route, priority=5),
        lambda: services.route_delete(actor=user, route=route),
        lambda: services.target_add(actor=user, route=route, name="t", upstream_url=UPSTREAM),
        lambda: services.target_update(actor=user, target=primary, weight=5),
        lambda: services.target_remove(actor=user, target=primary),
        lambda: services.canary_start(actor=user, route=route, target=primary, mode="weight", weight=5),
        lambda: services.canary_set_weight(actor=user, route=route, weight=5),
        lambda: services.canary_promote(actor=user, route=route),
        lambda: services.canary_rollback(actor=user, route=route),
    ]
    with nothing_recorded():
        for call in calls:
            with pytest.raises(PermissionDenied):
                call()
    assert Route.objects.count() == 1


# --- Routes ----------------------------------------------------------------------------


def test_creating_a_route_is_recorded_once(staff, rest_product):
    with recorded_once("route.create"):
        route = services.route_create(actor=staff, product=rest_product, name="v2", path_prefix="/v2", priority=10)
    event = AuditEvent.objects.latest("pk")
    assert (event.organization, event.actor) == (rest_product.organization, staff)
    assert route.retry_on_statuses == [502, 503, 504]


def test_updating_a_route_is_recorded_once_and_a_no_op_not_at_all(staff, route):
    with recorded_once("route.update"):
        services.route_update(actor=staff, route=route, retry_count=2, limit_rps=5, limit_rpm=100)
    assert AuditEvent.objects.latest("pk").changes["retry_count"] == [0, 2]
    with nothing_recorded():
        services.route_update(actor=staff, route=route, retry_count=2)


def test_deleting_a_route_is_recorded_once(staff, route):
    with recorded_once("route.delete"):
        services.route_delete(actor=staff, route=route)
    assert not Route.objects.exists()
    assert not RouteTarget.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"connect_timeout_ms": 10_000, "first_byte_timeout_ms": 5_000},
            "first_byte_timeout_ms",
            "The first-byte timeout (5000 ms) is shorter than the connect timeout (10000 ms).",
        ),
        (
            {"first_byte_timeout_ms": 90_000, "total_timeout_ms": 60_000},
            "total_timeout_ms",
            "The total timeout (60000 ms) is shorter than the first-byte timeout (90000 ms).",
        ),
        (
            {"idle_timeout_ms": 400_000},
            "idle_timeout_ms",
            "The idle timeout (400000 ms) is longer than the total timeout (300000 ms).",
        ),
        ({"connect_timeout_ms": 0}, "connect_timeout_ms", "greater than or equal to 1"),
        ({"retry_count": 6}, "retry_count", "less than or equal to 5"),
        ({"retry_on_statuses": [502, 99, 600]}, "retry_on_statuses", "99, 600: status codes are between 100 and 599."),
        ({"retry_on_statuses": [502, 502]}, "retry_on_statuses", "A status code is listed twice."),
        (
            {"limit_rps": 10, "limit_rpm": 5},
            "limit_rpm",
            "The per-minute limit (5) is below the per-second limit (10).",
        ),
        ({"path_prefix": "orders"}, "path_prefix", "A path prefix starts with /"),
        ({"model": "chat"}, "model", "Only model API routes match a model name."),
        ({"host": "https://api.example.com/"}, "host", "Give a host name such as api.example.com"),
        ({"headers": {"Authorization": "Bearer x"}}, "headers", "Authorization carries credentials"),
        ({"headers": {"bad name": "x"}}, "headers", "'bad name' is not a valid header name."),
        ({"fallback_target_ids": [999_999]}, "fallback_target_ids", "Not targets of this route: 999999."),
        ({"fallback_models": ["chat"]}, "fallback_models", "Only model API routes fall back to other models."),
        ({"name": "orders"}, "name", "already has a route named 'orders'"),
    ],
)
def test_bad_route_settings_are_refused_precisely_and_nothing_is_saved(staff, route, fields, field, message):
    with nothing_recorded(), pytest.raises(ValidationError) as excinfo:
        services.route_create(actor=staff, product=route.product, **{"name": "new", "path_prefix": "/n", **fields})
    assert any(message in m for m in errors_of(excinfo)[field]), errors_of(excinfo)
    assert Route.objects.count() == 1


def test_a_rest_route_must_say_what_it_matches(staff, rest_product):
    with pytest.raises(ValidationError) as excinfo:
        services.route_create(actor=staff, product=rest_product, name="everything")
    assert errors_of(excinfo)["__all__"] == ["Say what the route matches: a path prefix, a host or headers."]


def test_mcp_and_agent_routes_match_by_the_product_itself(staff):
    server = ProductVersionFactory(product__kind="mcp_server").product
    route = services.route_create(actor=staff, product=server, name="all")
    assert route.matches_by_product
    with pytest.raises(ValidationError) as excinfo:
        services.route_update(actor=staff, route=route, path_prefix="/tools")
    assert errors_of(excinfo)["path_prefix"] == ["Only REST API routes match a path prefix."]


def test_model_routes_name_models_the_product_offers(staff, model_product):
    route = services.route_create(
        actor=staff, product=model_product, name="chat", model="chat", fallback_models=["chat-mini", "chat-large"]
    )
    assert route.fallback_models == ["chat-mini", "chat-large"]
    with pytest.raises(ValidationError) as excinfo:
        services.route_create(actor=staff, product=model_product, name="x", model="gpt-9", fallback_models=["nope"])
    assert errors_of(excinfo) == {
        "model": [f"{model_product.name} offers no model 'gpt-9'."],
        "fallback_models": [f"{model_product.name} offers no model 'nope'."],
    }


def test_cutting_streams_on_budget_is_off_by_default_and_switched_on_once(staff, model_product):
    route = services.route_create(actor=staff, product=model_product, name="chat", model="chat")
    assert route.cut_stream_on_budget is False
    with recorded_once("route.update"):
        services.route_update(actor=staff, route=route, cut_stream_on_budget=True)
    assert AuditEvent.objects.latest("pk").changes == {"cut_stream_on_budget": [False, True]}
    with nothing_recorded():
        services.route_update(actor=staff, route=route, cut_stream_on_budget=True)
    route.refresh_from_db()
    assert route.cut_stream_on_budget is True


def test_only_model_routes_cut_streams_on_budget(staff, route):
    with nothing_recorded(), pytest.raises(ValidationError) as excinfo:
        services.route_update(actor=staff, route=route, cut_stream_on_budget=True)
    assert errors_of(excinfo)["cut_stream_on_budget"] == [
        "Only model API routes stream answers against a token budget."
    ]
    route.refresh_from_db()
    assert route.cut_stream_on_budget is False


# --- Targets ---------------------------------------------------------------------------


def test_adding_a_target_encrypts_its_secret_and_is_recorded_once(staff, route):
    with recorded_once("route_target.add"):
        target = services.target_add(
            actor=staff,
            route=route,
            name="backup",
            upstream_url="http://127.0.0.1:9105",
            auth_header="Authorization",
            secret="Bearer upstream-secret",
            weight=50,
        )
    assert target.secret_encrypted
    assert "upstream-secret" not in target.secret_encrypted
    assert secret_decrypt(target.secret_encrypted) == "Bearer upstream-secret"
    assert "upstream-secret" not in str(AuditEvent.objects.latest("pk").changes)


def test_an_upstream_the_platform_must_not_call_is_refused(staff, route):
    with nothing_recorded(), pytest.raises(ValidationError) as excinfo:
        services.target_add(actor=staff, route=route, name="evil", upstream_url=METADATA_URL)
    assert "link-local" in errors_of(excinfo)["upstream_url"][0]
    assert route.targets.count() == 1


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"weight": 1001}, "weight", "less than or equal to 1000"),
        ({"upstream_url": "not a url"}, "upstream_url", "Enter a valid URL."),
        ({"upstream_url": "ftp://files.example.com"}, "upstream_url", "Only http:// and https:// URLs are allowed."),
        ({"secret": "s3cret"}, "auth_header", "Name the header that carries the upstream secret."),
        ({"auth_header": "Bad Header"}, "auth_header", "Not a valid HTTP header name."),
        ({"model": "gpt-x"}, "model", "Only model API routes override the model."),
        ({"name": "primary"}, "name", "The route already has a target named 'primary'."),
    ],
)
def test_bad_targets_are_refused_precisely(staff, route, fields, field, message):
    with nothing_recorded(), pytest.raises(ValidationError) as excinfo:
        services.target_add(actor=staff, route=route, **{"name": "new", "upstream_url": UPSTREAM, **fields})
    assert any(message in m for m in errors_of(excinfo)[field]), errors_of(excinfo)


def test_a_route_keeps_a_target_with_a_positive_weight(staff, route, primary, candidate):
    message = "At least one target of the route needs a positive weight; this would leave none."
    with nothing_recorded():
        with pytest.raises(ValidationError) as excinfo:
            services.target_update(actor=staff, target=primary, weight=0)
        assert errors_of(excinfo) == {"weight": [message]}
        with pytest.raises(ValidationError) as excinfo:
            services.target_remove(actor=staff, target=primary)
        assert errors_of(excinfo) == {"weight": [message]}
    primary.refresh_from_db()
    assert primary.weight == 100


def test_the_first_target_cannot_have_weight_zero(staff, rest_product):
    route = services.route_create(actor=staff, product=rest_product, name="new", path_prefix="/new")
    with pytest.raises(ValidationError) as excinfo:
        services.target_add(actor=staff, route=route, name="t", upstream_url=UPSTREAM, weight=0)
    assert list(errors_of(excinfo)) == ["weight"]


def test_updating_a_target_is_recorded_once_and_keeps_or_clears_the_secret(staff, route, primary):
    with recorded_once("route_target.update"):
        services.target_update(actor=staff, target=primary, auth_header="X-Key", secret="k1")
    stored = primary.secret_encrypted
    with recorded_once("route_target.update"):
        services.target_update(actor=staff, target=primary, weight=70)
    primary.refresh_from_db()
    assert (primary.weight, primary.secret_encrypted) == (70, stored), "None keeps the secret"
    with nothing_recorded():
        services.target_update(actor=staff, target=primary, weight=70)
    services.target_update(actor=staff, target=primary, secret="")
    primary.refresh_from_db()
    assert primary.secret_encrypted == ""


def test_removing_a_target_drops_it_from_the_fallback_chain(staff, route, candidate):
    services.target_update(actor=staff, target=candidate, weight=10)
    services.route_update(actor=staff, route=route, fallback_target_ids=[candidate.pk])
    with recorded_once("route_target.remove"):
        services.target_remove(actor=staff, target=candidate)
    route.refresh_from_db()
    assert route.fallback_target_ids == []


def test_the_last_target_may_be_removed(staff, route, primary):
    generation = config_generation()
    services.target_remove(actor=staff, target=primary)
    assert not route.targets.exists()
    assert config_generation() == generation + 1
