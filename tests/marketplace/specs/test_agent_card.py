from __future__ import annotations

import json
from typing import Any

import pytest

from marketplace.specs.agent_card import AgentInterface, parse_agent_card
from marketplace.specs.errors import SpecError
from tests.marketplace.specs.conftest import fixture_text


def _card(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_text(name))
    return data


def test_valid_v03_card() -> None:
    card = parse_agent_card(fixture_text("agent-card-v0.3.json"))
    assert (card.spec_version, card.name, card.version) == ("0.3", "Travel Planner", "1.4.0")
    assert (card.url, card.protocol_version, card.preferred_transport) == (
        "https://agents.example.com/travel/a2a/v1",
        "0.3.0",
        "JSONRPC",
    )
    # The additional interface that repeats the main one is not listed twice.
    assert card.interfaces == [
        AgentInterface("https://agents.example.com/travel/a2a/v1", "JSONRPC", "0.3.0"),
        AgentInterface("https://agents.example.com/travel/grpc", "GRPC", "0.3.0"),
    ]
    assert card.capabilities.streaming is True
    assert card.capabilities.push_notifications is False
    assert card.capabilities.extended_agent_card is True
    assert [s.id for s in card.skills] == ["plan-trip", "book-flight"]
    assert card.skills[0].examples == ["Plan 3 days in Lisbon in May"]
    assert card.skills[0].output_modes == ["application/json"]
    assert card.security == [{"google": ["openid", "profile", "email"]}]
    assert card.provider is not None
    assert card.provider.organization == "Example Travel"
    assert card.documentation_url == "https://example.com/docs/travel-agent"


def test_valid_v10_card() -> None:
    card = parse_agent_card(_card("agent-card-v1.0.json"))
    assert card.spec_version == "1.0"
    assert (card.url, card.protocol_version, card.preferred_transport) == (
        "https://invoices.example.com/a2a",
        "1.0",
        "HTTP+JSON",
    )
    assert card.interfaces[1] == AgentInterface("https://invoices.example.com/a2a/jsonrpc", "JSONRPC", "1.0", "acme")
    assert card.capabilities.push_notifications is True
    assert card.security == [{"schemes": {"apiKey": {"list": []}}}]
    assert card.skills[0].tags == ["invoice", "ocr"]


def test_v03_without_preferred_transport_defaults_to_jsonrpc() -> None:
    card = _card("agent-card-v0.3.json")
    del card["preferredTransport"], card["additionalInterfaces"]
    assert parse_agent_card(card).interfaces == [
        AgentInterface("https://agents.example.com/travel/a2a/v1", "JSONRPC", "0.3.0")
    ]


def test_invalid_card_reports_every_problem() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_agent_card(fixture_text("agent-card-invalid.json"))
    assert excinfo.value.message == "The agent card is invalid: name: must not be empty (and 6 more)."
    assert excinfo.value.field == "name"
    assert excinfo.value.details == [
        "name: must not be empty",
        "description: is required",
        "url: 'ftp://agents.example.com/a2a' is not an absolute http(s) URL",
        "capabilities.streaming: must be true or false",
        "defaultOutputModes: is required (a list of strings)",
        "skills[1].id: 's1' is already the id of skills[0]",
        "skills[1].tags: is required (a list of strings)",
    ]


def test_v03_requires_url_and_protocol_version() -> None:
    card = _card("agent-card-v0.3.json")
    del card["url"], card["protocolVersion"]
    with pytest.raises(SpecError) as excinfo:
        parse_agent_card(card)
    assert excinfo.value.details == ["url: is required", "protocolVersion: is required"]


def test_v10_interfaces_must_be_complete_and_http() -> None:
    card = _card("agent-card-v1.0.json")
    card["supportedInterfaces"] = [
        {"url": "grpc://invoices.example.com", "protocolBinding": "GRPC", "protocolVersion": "1.0"},
        {"url": "https://invoices.example.com/a2a"},
    ]
    with pytest.raises(SpecError) as excinfo:
        parse_agent_card(card)
    assert excinfo.value.details == [
        "supportedInterfaces[0].url: 'grpc://invoices.example.com' is not an absolute http(s) URL",
        "supportedInterfaces[1].protocolBinding: is required",
        "supportedInterfaces[1].protocolVersion: is required",
    ]


def test_v10_needs_at_least_one_interface() -> None:
    card = _card("agent-card-v1.0.json")
    card["supportedInterfaces"] = []
    with pytest.raises(SpecError, match=r"supportedInterfaces: must be a non-empty list"):
        parse_agent_card(card)


@pytest.mark.parametrize(
    ("patch", "detail"),
    [
        ({"skills": "all"}, "skills: is required (a list of skills, which may be empty)"),
        ({"capabilities": None}, "capabilities: is required (an object)"),
        (
            {"provider": {"organization": "X", "url": "javascript:alert(1)"}},
            "provider.url: 'javascript:alert(1)' is not an absolute http(s) URL",
        ),
        ({"security": [{"google": "openid"}]}, "security[0]: must map each security scheme name to a list of scopes"),
        ({"defaultInputModes": "text/plain"}, "defaultInputModes: must be a list of strings"),
        ({"iconUrl": "/icon.png"}, "iconUrl: '/icon.png' is not an absolute http(s) URL"),
    ],
)
def test_field_problems(patch: dict[str, Any], detail: str) -> None:
    card = {**_card("agent-card-v0.3.json"), **patch}
    with pytest.raises(SpecError) as excinfo:
        parse_agent_card(card)
    assert excinfo.value.details == [detail]


def test_not_json_or_not_an_object() -> None:
    with pytest.raises(SpecError, match=r"^The agent card is not valid JSON: "):
        parse_agent_card('{"name": ')
    with pytest.raises(SpecError, match=r"^The agent card's root must be an object"):
        parse_agent_card("[]")
