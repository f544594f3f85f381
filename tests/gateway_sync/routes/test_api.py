"""The console API (/api/v1/console/): staff only, problem documents with field errors
for bad input (nothing saved), and the same flows as the pages."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
import yaml
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consumers.models import Plan
from gateway_sync import services_guardrails, services_routes
from gateway_sync.models_guardrails import GuardrailPolicy
from gateway_sync.models_routes import Canary, Route, RouteTarget
from gateway_sync.selectors import config_generation
from tests.gateway_sync.routes.conftest import CANARY_UPSTREAM, METADATA_URL, UPSTREAM
from tests.marketplace.api.helpers import Api, all_messages, assert_problem, ok

pytestmark = pytest.mark.django_db
BASE = "/api/v1/console"


def endpoints(route: Route, target: RouteTarget, policy: GuardrailPolicy, plan: Plan) -> list[tuple[str, str]]:
    r, t, p = route.pk, target.pk, policy.pk
    rule = policy.rules.get().pk
    return [
        ("get", f"{BASE}/routes/"),
        ("post", f"{BASE}/routes/"),
        ("get", f"{BASE}/routes/{r}/"),
        ("patch", f"{BASE}/routes/{r}/"),
        ("delete", f"{BASE}/routes/{r}/"),
        ("get", f"{BASE}/routes/{r}/targets/"),
        ("post", f"{BASE}/routes/{r}/targets/"),
        ("get", f"{BASE}/routes/{r}/targets/{t}/"),
        ("patch", f"{BASE}/routes/{r}/targets/{t}/"),
        ("delete", f"{BASE}/routes/{r}/targets/{t}/"),
        ("post", f"{BASE}/routes/{r}/canary/start/"),
        ("post", f"{BASE}/routes/{r}/canary/weight/"),
        ("post", f"{BASE}/routes/{r}/canary/promote/"),
        ("post", f"{BASE}/routes/{r}/canary/rollback/"),
        ("get", f"{BASE}/routes/{r}/canary/events/"),
        ("get", f"{BASE}/guardrails/"),
        ("post", f"{BASE}/guardrails/"),
        ("get", f"{BASE}/guardrails/{p}/"),
        ("patch", f"{BASE}/guardrails/{p}/"),
        ("delete", f"{BASE}/guardrails/{p}/"),
        ("get", f"{BASE}/guardrails/{p}/rules/"),
        ("post", f"{BASE}/guardrails/{p}/rules/"),
        ("get", f"{BASE}/guardrails/{p}/rules/{rule}/"),
        ("patch", f"{BASE}/guardrails/{p}/rules/{rule}/"),
        ("delete", f"{BASE}/guardrails/{p}/rules/{rule}/"),
        ("get", f"{BASE}/guardrails/{p}/attachments/"),
        ("post", f"{BASE}/guardrails/{p}/attachments/"),
        ("delete", f"{BASE}/guardrails/{p}/attachments/products/{route.product.slug}/"),
        ("delete", f"{BASE}/guardrails/{p}/attachments/plans/{plan.pk}/"),
        ("delete", f"{BASE}/guardrails/{p}/attachments/routes/{r}/"),
        ("post", f"{BASE}/guardrails/{p}/test/"),
    ]


def send(api: Api, method: str, path: str, data: Any = None) -> Any:
    return getattr(api, method)(path) if method in {"get", "delete"} else getattr(api, method)(path, data or {})


@pytest.fixture
def plan(rest_product) -> Plan:
    return Plan.objects.create(product=rest_product, name="Pro")


@pytest.fixture
def staff_api(staff) -> Api:
    return Api(staff)


@pytest.mark.parametrize("persona", ["owner", "member", "outsider"])
def test_everyone_but_staff_is_refused_every_endpoint(request, persona, route, primary, policy, plan):
    api = Api(request.getfixturevalue(persona))
    generation = config_generation()
    for method, path in endpoints(route, primary, policy, plan):
        body = assert_problem(send(api, method, path), 403)
        assert body["detail"] == "Traffic governance is for platform staff.", path
    assert config_generation() == generation
    assert (Route.objects.count(), RouteTarget.objects.count(), GuardrailPolicy.objects.count()) == (1, 1, 1)


def test_anonymous_clients_must_authenticate(route, primary, policy, plan):
    for method, path in endpoints(route, primary, policy, plan):
        response = send(Api(), method, path)
        assert response.status_code == 401, path
        assert response.json()["code"] == "not_authenticated"


def test_staff_manage_a_route_its_targets_and_a_canary(staff_api, rest_product):
    route = ok(staff_api.post(f"{BASE}/routes/", {"product": "echo", "name": "v2", "path_prefix": "/v2"}), 201)
    assert (route["product"], route["targets"], route["canary"]) == ("echo", [], None)
    assert route["retry_on_statuses"] == [502, 503, 504]
    base = f"{BASE}/routes/{route['id']}"
    stable = ok(staff_api.post(f"{base}/targets/", {"name": "stable", "upstream_url": UPSTREAM}), 201)
    new = ok(
        staff_api.post(
            f"{base}/targets/",
            {"name": "new", "upstream_url": CANARY_UPSTREAM, "weight": 0, "auth_header": "X-Key", "secret": "s3"},
        ),
        201,
    )
    assert new["has_secret"] is True
    assert "secret" not in new
    assert "secret_encrypted" not in new
    updated = ok(staff_api.patch(f"{base}/", {"retry_count": 2, "fallback_target_ids": [stable["id"]]}))
    assert (updated["retry_count"], updated["fallback_target_ids"]) == (2, [stable["id"]])

    started = ok(staff_api.post(f"{base}/canary/start/", {"target": new["id"], "mode": "weight", "weight": 5}), 201)
    assert (started["canary"]["target_name"], started["canary"]["weight"]) == ("new", 5)
    assert ok(staff_api.post(f"{base}/canary/weight/", {"weight": 30}))["canary"]["weight"] == 30
    promoted = ok(staff_api.post(f"{base}/canary/promote/"))
    assert promoted["canary"] is None
    assert {t["name"]: t["weight"] for t in promoted["targets"]} == {"stable": 0, "new": 100}
    events = ok(staff_api.get(f"{base}/canary/events/"))["results"]
    assert [e["kind"] for e in events] == ["promoted", "weight_changed", "started"]
    assert events[0]["from_state"]["weights"] == {"stable": 100, "new": 0}

    assert ok(staff_api.get(f"{BASE}/routes/", {"product": "echo"}))["count"] == 1
    assert ok(staff_api.get(f"{BASE}/routes/", {"product": "other"}))["count"] == 0
    assert staff_api.delete(f"{base}/").status_code == 204
    assert not Route.objects.exists()


def test_staff_switch_a_model_route_to_cut_streams_on_budget(staff_api, model_product):
    route = ok(staff_api.post(f"{BASE}/routes/", {"product": "llm", "name": "chat", "model": "chat"}), 201)
    assert route["cut_stream_on_budget"] is False
    generation = config_generation()
    updated = ok(staff_api.patch(f"{BASE}/routes/{route['id']}/", {"cut_stream_on_budget": True}))
    assert updated["cut_stream_on_budget"] is True
    assert config_generation() == generation + 1
    assert Route.objects.get(pk=route["id"]).cut_stream_on_budget is True


def test_a_canary_is_rolled_back(staff_api, route, candidate):
    base = f"{BASE}/routes/{route.pk}"
    ok(staff_api.post(f"{base}/canary/start/", {"target": candidate.pk, "mode": "apps", "app_ids": []}), 400)
    ok(
        staff_api.post(
            f"{base}/canary/start/",
            {"target": candidate.pk, "mode": "header", "header_name": "X-Canary", "header_value": "1"},
        ),
        201,
    )
    rolled_back = ok(staff_api.post(f"{base}/canary/rollback/"))
    assert rolled_back["canary"] is None
    assert {t["name"]: t["weight"] for t in rolled_back["targets"]} == {"primary": 100, "candidate": 0}
    assert not Canary.objects.exists()


@pytest.mark.parametrize(
    ("method", "path", "data", "field", "message"),
    [
        (
            "patch",
            "",
            {"connect_timeout_ms": 9000, "first_byte_timeout_ms": 100},
            "first_byte_timeout_ms",
            "The first-byte timeout (100 ms) is shorter than the connect timeout (9000 ms).",
        ),
        ("patch", "", {"retry_on_statuses": [700]}, "retry_on_statuses", "700: status codes are between 100 and 599."),
        ("patch", "", {"retry_on_statuses": ["often"]}, "retry_on_statuses", "A valid integer is required."),
        ("patch", "", {"headers": "X-A: b"}, "headers", 'Expected a dictionary of items but got type "str".'),
        (
            "patch",
            "",
            {"cut_stream_on_budget": True},
            "cut_stream_on_budget",
            "Only model API routes stream answers against a token budget.",
        ),
        ("post", "targets/", {"name": "m", "upstream_url": METADATA_URL}, "upstream_url", "link-local"),
        (
            "post",
            "targets/",
            {"name": "z", "upstream_url": UPSTREAM, "weight": 1001},
            "weight",
            "less than or equal to 1000",
        ),
        (
            "patch",
            "targets/TARGET/",
            {"weight": 0},
            "weight",
            "At least one target of the route needs a positive weight",
        ),
        ("post", "canary/start/", {"target": "TARGET", "mode": "weight"}, "target", "add it with weight 0"),
        ("post", "canary/start/", {"target": 999999, "mode": "weight"}, "target", "Not a target of this route."),
        ("post", "canary/start/", {"target": "TARGET", "mode": "often"}, "mode", "is not a valid choice"),
        ("post", "canary/weight/", {"weight": 10}, "non_field_errors", "The route has no canary."),
    ],
)
def test_bad_route_input_is_a_problem_naming_the_field(staff_api, route, primary, method, path, data, field, message):
    generation = config_generation()
    path = path.replace("TARGET", str(primary.pk))
    data = {k: primary.pk if v == "TARGET" else v for k, v in data.items()}
    body = assert_problem(send(staff_api, method, f"{BASE}/routes/{route.pk}/{path}", data), 400, errors=True)
    assert message in all_messages({"errors": {field: body["errors"][field]}}), body
    assert config_generation() == generation
    primary.refresh_from_db()
    route.refresh_from_db()
    assert (primary.weight, route.connect_timeout_ms, route.retry_on_statuses) == (100, 5000, [502, 503, 504])
    assert route.targets.count() == 1


def test_a_route_of_an_unknown_product_is_not_found(staff_api):
    assert_problem(staff_api.post(f"{BASE}/routes/", {"product": "nope", "name": "x", "path_prefix": "/"}), 404)
    assert_problem(staff_api.get(f"{BASE}/routes/999999/"), 404)


def test_staff_manage_a_policy_its_rules_and_attachments(staff_api, rest_product, plan, route):
    policy = ok(staff_api.post(f"{BASE}/guardrails/", {"name": "Baseline", "description": "For all"}), 201)
    base = f"{BASE}/guardrails/{policy['id']}"
    rule = ok(
        staff_api.post(
            f"{base}/rules/", {"kind": "keyword", "action": "redact", "words": ["secret"], "on_response": True}
        ),
        201,
    )
    assert (rule["kind"], rule["words"], rule["on_request"], rule["on_response"]) == ("keyword", ["secret"], True, True)
    assert ok(staff_api.patch(f"{base}/rules/{rule['id']}/", {"action": "log"}))["action"] == "log"
    for data in ({"product": "echo"}, {"plan": plan.pk}, {"route": route.pk}):
        ok(staff_api.post(f"{base}/attachments/", data))
    attached = ok(staff_api.get(f"{base}/attachments/"))
    assert [p["slug"] for p in attached["products"]] == ["echo"]
    assert [p["id"] for p in attached["plans"]] == [plan.pk]
    assert [r["id"] for r in attached["routes"]] == [route.pk]
    assert ok(staff_api.get(f"{BASE}/routes/{route.pk}/"))["guardrail_ids"] == [policy["id"]]
    detached = ok(staff_api.delete(f"{base}/attachments/plans/{plan.pk}/"))
    assert detached["plans"] == []
    full = ok(staff_api.get(f"{base}/"))
    assert (full["products"], full["plans"], full["routes"]) == (["echo"], [], [route.pk])

    verdict = ok(staff_api.post(f"{base}/test/", {"text": "the secret word", "direction": "response"}))
    assert verdict == {
        "blocked": False,
        "redacted": False,
        "text": "the secret word",
        "findings": [{"kind": "keyword", "action": "log", "start": 4, "end": 10, "text": "secret"}],
    }
    assert ok(staff_api.patch(f"{base}/", {"enabled": False}))["enabled"] is False
    assert staff_api.delete(f"{base}/rules/{rule['id']}/").status_code == 204
    assert staff_api.delete(f"{base}/").status_code == 204
    assert not GuardrailPolicy.objects.exists()


@pytest.mark.parametrize(
    ("path", "data", "field", "message"),
    [
        ("rules/", {"kind": "regex", "pattern": "(x+)+y"}, "pattern", "exponential time"),
        ("rules/", {"kind": "regex", "pattern": "(?P<"}, "pattern", "Not a valid regular expression"),
        ("rules/", {"kind": "pii_phone", "words": ["x"]}, "words", "rules take no words"),
        ("rules/", {"kind": "psychic"}, "kind", "is not a valid choice"),
        ("attachments/", {"product": "echo", "plan": 1}, "non_field_errors", "exactly one of product, plan and route"),
        ("attachments/", {}, "non_field_errors", "exactly one of product, plan and route"),
        ("test/", {"text": "x", "direction": "sideways"}, "direction", "is not a valid choice"),
    ],
)
def test_bad_guardrail_input_is_a_problem_naming_the_field(staff_api, policy, rest_product, path, data, field, message):
    generation = config_generation()
    body = assert_problem(staff_api.post(f"{BASE}/guardrails/{policy.pk}/{path}", data), 400, errors=True)
    assert message in " ".join(str(m) for m in body["errors"][field]), body
    assert config_generation() == generation
    assert policy.rules.count() == 1
    assert not policy.products.exists()


def test_the_schema_lists_the_console_api_without_secrets():
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    schema = yaml.safe_load(out.getvalue())
    paths = [
        p
        for p in schema["paths"]
        if p.startswith("/api/v1/console/routes") or p.startswith("/api/v1/console/guardrails")
    ]
    assert len(paths) == 18
    target = schema["components"]["schemas"]["TargetOutput"]["properties"]
    assert "has_secret" in target
    assert "secret" not in target
    assert "secret_encrypted" not in target
    assert schema["components"]["schemas"]["GuardrailKindEnum"]["enum"][0] == "keyword"


def test_the_api_lists_do_not_grow_queries_with_their_rows(staff, staff_api, rest_product, route, policy):
    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as context:
            ok(staff_api.get(path))
        return len(context.captured_queries)

    paths = (f"{BASE}/routes/", f"{BASE}/guardrails/")
    before = {path: queries(path) for path in paths}
    for index in range(5):
        more = services_routes.route_create(
            actor=staff, product=rest_product, name=f"r{index}", path_prefix=f"/{index}"
        )
        services_routes.target_add(actor=staff, route=more, name="t", upstream_url=UPSTREAM)
        services_routes.target_add(actor=staff, route=more, name="c", upstream_url=UPSTREAM, weight=0)
        services_routes.canary_start(actor=staff, route=more, target=more.targets.get(name="c"), mode="weight")
        extra = services_guardrails.guardrail_policy_create(actor=staff, name=f"p{index}")
        services_guardrails.guardrail_rule_add(actor=staff, policy=extra, kind="pii_phone")
        services_guardrails.guardrail_policy_attach(actor=staff, policy=extra, route=more)
    assert {path: queries(path) for path in paths} == before
