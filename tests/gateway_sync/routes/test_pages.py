"""The console's route and guardrail pages: staff only; forms answer bad input with 400
and precise messages, saving nothing; htmx gets the panel it swaps."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from gateway_sync import services_guardrails, services_routes
from gateway_sync.models_guardrails import GuardrailPolicy, GuardrailRule
from gateway_sync.models_routes import Canary, Route, RouteTarget
from gateway_sync.selectors import config_generation
from tests.conftest import client_for
from tests.gateway_sync.routes.conftest import CANARY_UPSTREAM, METADATA_URL

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def pages(route: Route, target: RouteTarget, policy: GuardrailPolicy) -> list[tuple[str, str]]:
    """Every console page and action of this feature, as (method, path)."""
    r, t, p = route.pk, target.pk, policy.pk
    rule = policy.rules.get().pk
    return [
        ("get", "/console/routes/"),
        ("post", "/console/routes/"),
        ("get", f"/console/routes/{r}/"),
        ("post", f"/console/routes/{r}/"),
        ("post", f"/console/routes/{r}/delete/"),
        ("post", f"/console/routes/{r}/targets/"),
        ("post", f"/console/routes/{r}/targets/{t}/"),
        ("post", f"/console/routes/{r}/targets/{t}/remove/"),
        ("post", f"/console/routes/{r}/canary/start/"),
        ("post", f"/console/routes/{r}/canary/weight/"),
        ("post", f"/console/routes/{r}/canary/promote/"),
        ("post", f"/console/routes/{r}/canary/rollback/"),
        ("get", "/console/guardrails/"),
        ("post", "/console/guardrails/"),
        ("get", f"/console/guardrails/{p}/"),
        ("post", f"/console/guardrails/{p}/"),
        ("post", f"/console/guardrails/{p}/delete/"),
        ("post", f"/console/guardrails/{p}/rules/"),
        ("post", f"/console/guardrails/{p}/rules/{rule}/"),
        ("post", f"/console/guardrails/{p}/rules/{rule}/remove/"),
        ("post", f"/console/guardrails/{p}/attach/"),
        ("post", f"/console/guardrails/{p}/detach/"),
        ("post", f"/console/guardrails/{p}/test/"),
    ]


@pytest.mark.parametrize("persona", ["owner", "member", "outsider"])
def test_everyone_but_staff_is_refused_every_page(request, persona, route, primary, policy):
    client = client_for(request.getfixturevalue(persona))
    generation = config_generation()
    for method, path in pages(route, primary, policy):
        response = getattr(client, method)(path, {"name": "x", "confirm_name": route.name})
        assert response.status_code == 403, (method, path)
    assert config_generation() == generation
    assert Route.objects.count() == GuardrailPolicy.objects.count() == 1


def test_anonymous_users_are_sent_to_sign_in(client, route, primary, policy):
    for method, path in pages(route, primary, policy):
        response = getattr(client, method)(path)
        assert response.status_code == 302, (method, path)
        assert response.headers["Location"].startswith("/accounts/login/")


def test_staff_see_every_page_and_the_console_links_to_them(staff, route, policy):
    client = client_for(staff)
    home = client.get("/console/").content.decode()
    assert 'href="/console/routes/"' in home
    assert 'href="/console/guardrails/"' in home
    for path in ("/console/routes/", f"/console/routes/?product={route.product.slug}", f"/console/routes/{route.pk}/"):
        assert client.get(path).status_code == 200
    assert "orders" in client.get("/console/routes/").content.decode()
    assert client.get("/console/routes/?product=nothing").status_code == 200
    assert "PII" in client.get("/console/guardrails/").content.decode()
    assert client.get(f"/console/guardrails/{policy.pk}/").status_code == 200
    assert client.get("/console/routes/999999/").status_code == 404


# --- Routes ----------------------------------------------------------------------------


def test_creating_a_route_leads_to_its_page(staff, rest_product):
    client = client_for(staff)
    response = client.post(
        "/console/routes/",
        {"product": rest_product.slug, "name": "v2", "priority": "3", "path_prefix": "/v2", "headers": "X-Tier: gold"},
    )
    route = Route.objects.get(name="v2")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/console/routes/{route.pk}/"
    assert (route.priority, route.headers) == (3, {"X-Tier": "gold"})


def test_a_bad_route_is_refused_with_the_reason_and_nothing_saved(staff, rest_product):
    client = client_for(staff)
    generation = config_generation()
    response = client.post(
        "/console/routes/", {"product": rest_product.slug, "name": "v2", "priority": "0", "model": "chat"}, **HTMX
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert 'id="route-create"' in body, "the htmx partial"
    assert "<html" not in body
    assert "Only model API routes match a model name." in body
    response = client.post(
        "/console/routes/", {"product": rest_product.slug, "name": "v3", "priority": "0", "headers": "no colon"}
    )
    assert "Line 1: write each header as Name: value." in response.content.decode()
    assert not Route.objects.exists()
    assert config_generation() == generation


def settings_data(route: Route, **changes: Any) -> dict[str, Any]:
    data = {
        "name": route.name,
        "priority": route.priority,
        "enabled": "on",
        "path_prefix": route.path_prefix,
        "connect_timeout_ms": 5000,
        "first_byte_timeout_ms": 60000,
        "total_timeout_ms": 300000,
        "idle_timeout_ms": 60000,
        "retry_count": 1,
        "retry_on_statuses": "502, 503",
        "retry_backoff_ms": 100,
        "fallback_target_ids": "",
        "fallback_models": "",
        "cooldown_failures": 5,
        "cooldown_window_s": 30,
        "cooldown_s": 30,
        "limit_rps": "",
        "limit_rpm": "",
    }
    return {**data, **changes}


def test_route_settings_are_saved(staff, route, primary):
    response = client_for(staff).post(
        f"/console/routes/{route.pk}/", settings_data(route, fallback_target_ids="primary", limit_rps=5, limit_rpm=60)
    )
    assert response.status_code == 302
    route.refresh_from_db()
    assert (route.retry_count, route.retry_on_statuses, route.fallback_target_ids) == (1, [502, 503], [primary.pk])
    assert (route.limit_rps, route.limit_rpm, route.enabled) == (5, 60, True)


def test_a_model_route_is_switched_to_cut_streams_on_budget_with_the_trade_off_shown(staff, model_product):
    route = services_routes.route_create(actor=staff, product=model_product, name="chat", model="chat")
    client = client_for(staff)
    page = client.get(f"/console/routes/{route.pk}/").content.decode()
    assert "Cut a stream when the token budget runs out" in page
    assert "truncated answer it is billed for" in page
    assert "overshot by one request" in page
    data = settings_data(route, path_prefix="", model="chat", cut_stream_on_budget="on")
    assert client.post(f"/console/routes/{route.pk}/", data).status_code == 302
    route.refresh_from_db()
    assert route.cut_stream_on_budget is True
    data.pop("cut_stream_on_budget")
    assert client.post(f"/console/routes/{route.pk}/", data).status_code == 302
    route.refresh_from_db()
    assert route.cut_stream_on_budget is False


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"connect_timeout_ms": 90000},
            "The first-byte timeout (60000 ms) is shorter than the connect timeout (90000 ms).",
        ),
        ({"retry_count": 9}, "Ensure this value is less than or equal to 5."),
        ({"retry_on_statuses": "502, soon"}, "&#x27;soon&#x27; is not a whole number"),
        ({"fallback_target_ids": "nobody"}, "The route has no target named &#x27;nobody&#x27;."),
        ({"limit_rps": 10, "limit_rpm": 5}, "The per-minute limit (5) is below the per-second limit (10)."),
    ],
)
def test_bad_route_settings_answer_400_with_the_reason(staff, route, changes, message):
    generation = config_generation()
    response = client_for(staff).post(f"/console/routes/{route.pk}/", settings_data(route, **changes), **HTMX)
    assert response.status_code == 400
    body = response.content.decode()
    assert message in body
    assert 'id="route-settings"' in body
    assert "<html" not in body
    route.refresh_from_db()
    assert (route.retry_count, route.connect_timeout_ms) == (0, 5000)
    assert config_generation() == generation


def test_targets_are_added_weighted_and_removed_in_the_traffic_panel(staff, route, primary):
    client = client_for(staff)
    response = client.post(
        f"/console/routes/{route.pk}/targets/",
        {"name": "backup", "upstream_url": CANARY_UPSTREAM, "weight": 50, "tls_verify": "on", "secret": ""},
        **HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="traffic"' in body
    assert "<html" not in body
    assert "Added the target backup." in body
    backup = route.targets.get(name="backup")
    response = client.post(f"/console/routes/{route.pk}/targets/{backup.pk}/", {"weight": 300}, **HTMX)
    assert response.status_code == 200
    backup.refresh_from_db()
    assert backup.weight == 300
    response = client.post(f"/console/routes/{route.pk}/targets/{backup.pk}/remove/", **HTMX)
    assert response.status_code == 200
    assert not route.targets.filter(name="backup").exists()


def test_bad_targets_answer_400_with_the_reason_and_nothing_saved(staff, route, primary):
    client = client_for(staff)
    generation = config_generation()
    response = client.post(
        f"/console/routes/{route.pk}/targets/", {"name": "evil", "upstream_url": METADATA_URL, "weight": 10}, **HTMX
    )
    assert response.status_code == 400
    assert "link-local" in response.content.decode()
    response = client.post(f"/console/routes/{route.pk}/targets/{primary.pk}/", {"weight": 0}, **HTMX)
    assert response.status_code == 400
    assert "At least one target of the route needs a positive weight" in response.content.decode()
    response = client.post(
        f"/console/routes/{route.pk}/targets/{primary.pk}/",
        {"name": "primary", "upstream_url": primary.upstream_url, "weight": 100, "secret": "s"},
        **HTMX,
    )
    assert response.status_code == 400
    assert "Name the header that carries the upstream secret." in response.content.decode()
    assert list(route.targets.values_list("name", "weight", "secret_encrypted")) == [("primary", 100, "")]
    assert config_generation() == generation


def test_a_target_edit_keeps_the_secret_unless_cleared(staff, route, primary):
    client = client_for(staff)
    base = {"name": "primary", "upstream_url": primary.upstream_url, "weight": 100, "auth_header": "X-Key"}
    assert (
        client.post(
            f"/console/routes/{route.pk}/targets/{primary.pk}/", {**base, "secret": "upstream-secret-k1-never-shown"}
        ).status_code
        == 302
    )
    primary.refresh_from_db()
    stored = primary.secret_encrypted
    page = client.get(f"/console/routes/{route.pk}/").content.decode()
    # A distinctive secret: a two-letter one appears by chance in CSRF tokens.
    assert "upstream-secret-k1-never-shown" not in page
    assert "secret stored" in page
    client.post(f"/console/routes/{route.pk}/targets/{primary.pk}/", {**base, "secret": ""})
    primary.refresh_from_db()
    assert primary.secret_encrypted == stored
    client.post(f"/console/routes/{route.pk}/targets/{primary.pk}/", {**base, "clear_secret": "on"})
    primary.refresh_from_db()
    assert primary.secret_encrypted == ""


def test_a_canary_is_started_promoted_in_one_click_and_its_history_shown(staff, route, primary, candidate):
    client = client_for(staff)
    response = client.post(
        f"/console/routes/{route.pk}/canary/start/", {"target": candidate.pk, "mode": "weight", "weight": 10}, **HTMX
    )
    assert response.status_code == 200, response.content
    assert "10% of requests" in response.content.decode()
    response = client.post(f"/console/routes/{route.pk}/canary/weight/", {"weight": 40}, **HTMX)
    assert "40% of requests" in response.content.decode()
    response = client.post(f"/console/routes/{route.pk}/canary/promote/", **HTMX)
    body = response.content.decode()
    assert "Promoted candidate" in body
    for kind in ("Started", "Weight changed", "Promoted"):
        assert f"<td>{kind}</td>" in body
    candidate.refresh_from_db()
    assert candidate.weight == 100
    assert not Canary.objects.exists()


def test_a_canary_is_rolled_back_in_one_click(staff, route, candidate):
    client = client_for(staff)
    client.post(
        f"/console/routes/{route.pk}/canary/start/",
        {"target": candidate.pk, "mode": "header", "header_name": "X-Canary", "header_value": "yes"},
    )
    response = client.post(f"/console/routes/{route.pk}/canary/rollback/")
    assert response.status_code == 302
    page = client.get(f"/console/routes/{route.pk}/").content.decode()
    assert "Rolled the canary back" in page
    assert "<td>Rolled back</td>" in page
    assert not Canary.objects.exists()


def test_bad_canaries_answer_400_with_the_reason(staff, route, primary, candidate):
    client = client_for(staff)
    response = client.post(
        f"/console/routes/{route.pk}/canary/start/", {"target": candidate.pk, "mode": "header"}, **HTMX
    )
    assert response.status_code == 400
    assert "Name the header that selects the canary." in response.content.decode()
    response = client.post(
        f"/console/routes/{route.pk}/canary/start/", {"target": primary.pk, "mode": "weight"}, **HTMX
    )
    assert response.status_code == 400, "a target with weight is not offered"
    response = client.post(f"/console/routes/{route.pk}/canary/promote/", **HTMX)
    assert response.status_code == 400
    assert "The route has no canary." in response.content.decode()
    assert not Canary.objects.exists()


def test_deleting_a_route_needs_its_name(staff, route):
    client = client_for(staff)
    client.post(f"/console/routes/{route.pk}/delete/", {"confirm_name": "wrong"})
    assert Route.objects.exists()
    response = client.post(f"/console/routes/{route.pk}/delete/", {"confirm_name": "orders"})
    assert response.headers["Location"] == "/console/routes/"
    assert not Route.objects.exists()


# --- Guardrails ------------------------------------------------------------------------


def test_a_policy_is_created_given_rules_attached_and_tried(staff, rest_product, route):
    client = client_for(staff)
    response = client.post("/console/guardrails/", {"name": "Baseline", "enabled": "on"})
    policy = GuardrailPolicy.objects.get(name="Baseline")
    assert response.headers["Location"] == f"/console/guardrails/{policy.pk}/"

    response = client.post(
        f"/console/guardrails/{policy.pk}/rules/",
        {"kind": "pii_credit_card", "action": "redact", "on_request": "on", "on_response": "on"},
        **HTMX,
    )
    assert response.status_code == 200
    assert 'id="rules"' in response.content.decode()
    rule = policy.rules.get()
    assert (rule.kind, rule.on_response) == ("pii_credit_card", True)

    response = client.post(f"/console/guardrails/{policy.pk}/attach/", {"target": f"route:{route.pk}"}, **HTMX)
    assert response.status_code == 200
    assert 'id="attachments"' in response.content.decode()
    assert list(policy.routes.all()) == [route]

    response = client.post(
        f"/console/guardrails/{policy.pk}/test/", {"text": "card 4111 1111 1111 1111", "direction": "response"}, **HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "card [CARD]" in body
    assert "Redacted" in body

    response = client.post(f"/console/guardrails/{policy.pk}/detach/", {"target": f"route:{route.pk}"}, **HTMX)
    assert response.status_code == 200
    assert not policy.routes.exists()


def test_bad_rules_answer_400_with_the_reason_and_nothing_saved(staff, policy):
    client = client_for(staff)
    generation = config_generation()
    for data, message in (
        ({"kind": "regex", "action": "block", "on_request": "on", "pattern": "(a+)+"}, "exponential time"),
        (
            {"kind": "regex", "action": "block", "on_request": "on", "pattern": "(unclosed"},
            "missing ), unterminated subpattern",
        ),
        ({"kind": "keyword", "action": "block", "on_request": "on"}, "List the words or phrases to look for."),
        ({"kind": "max_prompt_chars", "action": "redact", "on_request": "on", "max_chars": 10}, "blocked or logged"),
    ):
        response = client.post(f"/console/guardrails/{policy.pk}/rules/", data, **HTMX)
        assert response.status_code == 400
        assert message in response.content.decode()
    rule = policy.rules.get()
    response = client.post(
        f"/console/guardrails/{policy.pk}/rules/{rule.pk}/",
        {"kind": "pii_email", "action": "redact", "on_request": "on", "pattern": "x"},
        **HTMX,
    )
    assert response.status_code == 400
    assert "rules take no pattern" in response.content.decode()
    assert GuardrailRule.objects.count() == 1
    assert config_generation() == generation


def test_rules_are_edited_and_removed(staff, policy):
    client = client_for(staff)
    rule = policy.rules.get()
    response = client.post(
        f"/console/guardrails/{policy.pk}/rules/{rule.pk}/",
        {"kind": "keyword", "action": "log", "on_request": "on", "words": "secret\nconfidential\n"},
        **HTMX,
    )
    assert response.status_code == 200
    rule.refresh_from_db()
    assert (rule.kind, rule.action, rule.words) == ("keyword", "log", ["secret", "confidential"])
    assert client.post(f"/console/guardrails/{policy.pk}/rules/{rule.pk}/remove/", **HTMX).status_code == 200
    assert not policy.rules.exists()


def test_policy_settings_and_deletion(staff, policy):
    client = client_for(staff)
    response = client.post(f"/console/guardrails/{policy.pk}/", {"name": "PII", "description": "Personal data"})
    assert response.status_code == 302
    policy.refresh_from_db()
    assert (policy.description, policy.enabled) == ("Personal data", False)
    response = client.post("/console/guardrails/", {"name": "PII"}, **HTMX)
    assert response.status_code == 400
    assert "already exists" in response.content.decode()
    client.post(f"/console/guardrails/{policy.pk}/delete/", {"confirm_name": "PII"})
    assert not GuardrailPolicy.objects.exists()


def test_the_test_box_refuses_an_empty_text(staff, policy):
    response = client_for(staff).post(
        f"/console/guardrails/{policy.pk}/test/", {"text": "", "direction": "request"}, **HTMX
    )
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()


def test_pages_render_for_every_product_kind(staff, model_product):
    client = client_for(staff)
    response = client.post(
        "/console/routes/", {"product": model_product.slug, "name": "chat", "priority": 0, "model": "chat"}
    )
    route = Route.objects.get(name="chat")
    assert response.status_code == 302
    assert "model <code>chat</code>" in client.get(f"/console/routes/{route.pk}/").content.decode()


def test_every_id_on_the_pages_is_unique(staff, route, primary, candidate, policy):
    """The route page holds several forms with the same field names (name, weight...):
    a repeated id would send labels, and scripts, to the wrong input."""
    client = client_for(staff)
    client.post(f"/console/routes/{route.pk}/canary/start/", {"target": candidate.pk, "mode": "weight", "weight": 5})
    for path in (f"/console/routes/{route.pk}/", f"/console/guardrails/{policy.pk}/", "/console/routes/"):
        ids = re.findall(r'\sid="([^"]+)"', client.get(path).content.decode())
        assert sorted({i for i in ids if ids.count(i) > 1}) == [], path


def test_the_lists_do_not_grow_queries_with_their_rows(staff, rest_product, route, policy):
    """A baseline against N+1 queries: more routes and policies, the same queries."""
    client = client_for(staff)

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as context:
            assert client.get(path).status_code == 200
        return len(context.captured_queries)

    before = {path: queries(path) for path in ("/console/routes/", "/console/guardrails/")}
    for index in range(5):
        more = services_routes.route_create(
            actor=staff, product=rest_product, name=f"r{index}", path_prefix=f"/{index}"
        )
        services_routes.target_add(actor=staff, route=more, name="t", upstream_url=CANARY_UPSTREAM)
        services_routes.target_add(actor=staff, route=more, name="c", upstream_url=CANARY_UPSTREAM, weight=0)
        services_routes.canary_start(actor=staff, route=more, target=more.targets.get(name="c"), mode="weight")
        extra = services_guardrails.guardrail_policy_create(actor=staff, name=f"p{index}")
        services_guardrails.guardrail_policy_attach(actor=staff, policy=extra, route=more)
    assert {path: queries(path) for path in before} == before
