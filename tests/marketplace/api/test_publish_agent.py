"""Publishing an agent end to end through the API: its A2A agent card pasted (as text or
as an object) or fetched from the agent, reviewed, then in the catalog with its skills."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from marketplace.models import ProductVersion
from tests.marketplace.api.documents import UPSTREAM, agent_card, agent_card_text
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

CARD_URL = version_url("planner", "1.0.0", "agent-card/")
SKILL = {
    "id": "plan-trip",
    "name": "Plan a trip",
    "description": "Plans a few days somewhere, around the forecast.",
    "tags": ["travel", "weather"],
    "examples": ["Plan three days in Lyon"],
}


@pytest.fixture
def planner(member_api: Api) -> None:
    create_product(member_api, "planner", "agent", categories=["agents"])
    create_version(member_api, "planner", "1.0.0")


def test_an_agent_is_published_with_a_pasted_agent_card(
    planner: None, member_api: Api, staff_api: Api, anonymous_api: Api
) -> None:
    body = ok(member_api.post(CARD_URL, {"card": agent_card_text()}))

    assert body["spec"]["agent_card"]["name"] == "Trip planner"
    assert body["upstream_url"] == f"{UPSTREAM}/a2a"  # the card's own URL
    assert body["missing_for_submission"] == []
    assert AuditEvent.objects.get(action="version.set_agent_card").changes == {"name": "Trip planner", "source_url": ""}

    submit_and_approve(member_api, staff_api, "planner")

    assert [p["slug"] for p in ok(anonymous_api.get("/api/v1/catalog/", {"kind": "agent"}))["results"]] == ["planner"]
    page = ok(anonymous_api.get("/api/v1/catalog/planner/"))
    assert page["latest_version"]["skills"] == [SKILL]


def test_an_agent_card_may_be_pasted_as_an_object(planner: None, member_api: Api) -> None:
    body = ok(member_api.post(CARD_URL, {"card": agent_card()}))

    assert body["spec"]["agent_card"]["skills"][0]["id"] == "plan-trip"


def test_an_agent_card_is_fetched_from_the_agents_well_known_url(
    planner: None, member_api: Api, document_server: str
) -> None:
    body = ok(member_api.post(CARD_URL, {"url": f"{document_server}/agent"}))

    assert body["spec_source_url"] == f"{document_server}/agent/.well-known/agent-card.json"
    assert body["spec"]["agent_card"]["name"] == "Trip planner"


@pytest.mark.parametrize(
    ("card", "expected"),
    [
        (agent_card(name=None), "name"),
        (agent_card(skills="plan trips"), "skills"),
        (agent_card(url="not a url"), "url"),
        ("{broken", "JSON"),
        (42, "Give the agent card as JSON text or as an object."),
    ],
)
def test_a_bad_agent_card_is_refused_precisely(planner: None, member_api: Api, card: object, expected: str) -> None:
    problem = assert_problem(member_api.post(CARD_URL, {"card": card}), 400, errors=True)

    assert expected in all_messages(problem) + " ".join(problem["errors"])
    assert ProductVersion.objects.get().spec == {}


def test_a_card_and_a_url_exclude_each_other(planner: None, member_api: Api) -> None:
    problem = assert_problem(member_api.post(CARD_URL, {}), 400, errors=True)

    assert problem["errors"] == {"agent_card": ["Give either the document or a URL to fetch it from, not both."]}
