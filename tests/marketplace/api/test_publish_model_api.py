"""Publishing a model API end to end through the API: its models with their prices,
reviewed, then in the catalog for anonymous users. Bad model lists change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from accounts.models import AuditEvent
from marketplace.models import ModelOffering
from tests.marketplace.api.documents import UPSTREAM
from tests.marketplace.api.helpers import (
    Api,
    all_messages,
    assert_problem,
    create_product,
    create_version,
    ok,
    submit_and_approve,
    version_url,
)

MODELS = [
    {
        "public_name": "acme-chat",
        "upstream_name": "llama-3.1-8b-instruct",
        "context_window": 131072,
        "input_price_per_mtok": "0.20",
        "output_price_per_mtok": "0.60",
        "capabilities": ["chat", "streaming", "tools"],
    },
    {"public_name": "acme-embed", "capabilities": ["embeddings"], "input_price_per_mtok": "0.02"},
]


@pytest.fixture
def llm(member_api: Api) -> None:
    create_product(member_api, "llm", "model_api", categories=["ai-models"])
    create_version(member_api, "llm", "1.0.0")
    ok(member_api.patch(version_url("llm", "1.0.0"), {"upstream_url": f"{UPSTREAM}/v1"}))


def test_a_model_api_is_published_with_its_models_and_prices(
    llm: None, member_api: Api, staff_api: Api, anonymous_api: Api
) -> None:
    body = ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": MODELS}))

    assert [(m["public_name"], m["upstream_name"]) for m in body["models"]] == [
        ("acme-chat", "llama-3.1-8b-instruct"),
        ("acme-embed", "acme-embed"),
    ]
    assert body["missing_for_submission"] == []
    assert AuditEvent.objects.get(action="version.set_models").changes == {"models": ["acme-chat", "acme-embed"]}

    submit_and_approve(member_api, staff_api, "llm")

    assert [p["slug"] for p in ok(anonymous_api.get("/api/v1/catalog/", {"kind": "model_api"}))["results"]] == ["llm"]
    page = ok(anonymous_api.get("/api/v1/catalog/llm/"))
    assert page["latest_version"]["models"] == [
        {
            "public_name": "acme-chat",
            "context_window": 131072,
            "input_price_per_mtok": "0.200000",
            "output_price_per_mtok": "0.600000",
            "capabilities": ["chat", "streaming", "tools"],
        },
        {
            "public_name": "acme-embed",
            "context_window": 8192,
            "input_price_per_mtok": "0.020000",
            "output_price_per_mtok": "0.000000",
            "capabilities": ["embeddings"],
        },
    ]
    assert "llama" not in str(page)


def test_setting_models_again_replaces_them(llm: None, member_api: Api) -> None:
    ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": MODELS}))

    body = ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": [{"public_name": "acme-mini"}]}))

    assert [m["public_name"] for m in body["models"]] == ["acme-mini"]
    assert list(ModelOffering.objects.values_list("public_name", flat=True)) == ["acme-mini"]


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "List at least one model."),
        ([{"public_name": "a"}, {"public_name": "a"}], "Model 'a' is listed twice."),
        ([{"public_name": "bad name!"}], "Model 'bad name!': Enter a valid value."),
    ],
)
def test_a_bad_model_list_is_refused_and_changes_nothing(
    llm: None, member_api: Api, models: list[dict[str, Any]], message: str
) -> None:
    ok(member_api.put(version_url("llm", "1.0.0", "models/"), {"models": [{"public_name": "kept"}]}))

    problem = assert_problem(
        member_api.put(version_url("llm", "1.0.0", "models/"), {"models": models}), 400, errors=True
    )

    assert all_messages(problem) == message
    assert list(ModelOffering.objects.values_list("public_name", flat=True)) == ["kept"]


def test_model_fields_are_typed(llm: None, member_api: Api) -> None:
    models = [{"public_name": "a", "input_price_per_mtok": "cheap", "capabilities": ["telepathy"], "context_window": 0}]

    problem = assert_problem(
        member_api.put(version_url("llm", "1.0.0", "models/"), {"models": models}), 400, errors=True
    )

    assert set(problem["errors"]["models"][0]) == {"input_price_per_mtok", "capabilities", "context_window"}
    missing = assert_problem(member_api.put(version_url("llm", "1.0.0", "models/"), {}), 400, errors=True)
    assert missing["errors"] == {"models": ["This field is required."]}


def test_models_do_not_apply_to_other_kinds(member_api: Api) -> None:
    create_product(member_api, "weather", "rest_api")
    create_version(member_api, "weather", "1.0.0")

    problem = assert_problem(
        member_api.put(version_url("weather", "1.0.0", "models/"), {"models": MODELS}), 400, errors=True
    )

    assert all_messages(problem) == "This does not apply to REST API products."
