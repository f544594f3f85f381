"""Publishing an MCP server whose tools call a REST API (REST-to-MCP) end to end through
the API: defined by a Higress YAML document (exported back unchanged), by the platform's
JSON definition, or from an OpenAPI document; reviewed, then in the catalog."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from marketplace.models import McpTool, ProductVersion
from tests.marketplace.api.documents import OPENAPI_YAML, UPSTREAM
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

CONFIG_SECRET = "sk-config-77d0a1b2c3"
DEFINE_URL = version_url("weather", "1.0.0", "rest-to-mcp/")
EXPORT_URL = version_url("weather", "1.0.0", "rest-to-mcp/higress.yaml")

HIGRESS_YAML = f"""\
server:
  name: weather-rest
tools:
- name: get_forecast
  description: Get the weather forecast for a city.
  args:
  - name: city
    description: The city.
    type: string
    required: true
    position: query
  - name: days
    description: How many days.
    type: integer
    position: query
  requestTemplate:
    url: {UPSTREAM}/v1/forecast
    method: GET
    headers:
    - key: Accept
      value: application/json
  responseTemplate:
    body: 'Forecast for {{{{.city}}}}: {{{{.summary}}}}'
- name: create_alert
  description: Raise a storm alert for a region.
  args:
  - name: region
    description: The region.
    type: string
    required: true
    position: path
  - name: level
    description: How bad.
    type: string
    enum:
    - yellow
    - red
    position: body
  requestTemplate:
    url: {UPSTREAM}/v1/alerts/{{region}}
    method: POST
"""


def definition(**tool_overrides: Any) -> dict[str, Any]:
    tool: dict[str, Any] = {
        "name": "get_forecast",
        "description": "Get the forecast.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "request": {
            "method": "GET",
            "path": "/forecast",
            "args": [{"name": "city", "position": "query", "required": True}],
        },
    }
    tool.update(tool_overrides)
    return {"name": "weather-rest", "base_url": f"{UPSTREAM}/v1", "tools": [tool]}


@pytest.fixture
def weather(member_api: Api) -> None:
    create_product(member_api, "weather", "mcp_server")
    create_version(member_api, "weather", "1.0.0")


def test_a_rest_to_mcp_server_is_imported_from_higress_yaml_and_exported_unchanged(
    weather: None, member_api: Api, staff_api: Api, anonymous_api: Api
) -> None:
    body = ok(member_api.post(DEFINE_URL, {"higress_yaml": HIGRESS_YAML}))

    assert (body["mcp_transport"], body["upstream_url"]) == ("rest_to_mcp", UPSTREAM)
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert sorted(tools) == ["create_alert", "get_forecast"]
    assert tools["get_forecast"]["input_schema"]["required"] == ["city"]
    assert tools["get_forecast"]["request_template"]["request"]["method"] == "GET"
    assert tools["get_forecast"]["response_template"] == "Forecast for {{.city}}: {{.summary}}"
    assert body["missing_for_submission"] == []

    exported = member_api.get(EXPORT_URL)

    assert exported.status_code == 200
    assert exported["Content-Type"] == "application/yaml; charset=utf-8"
    assert exported["Content-Disposition"] == 'attachment; filename="weather-1.0.0.higress.yaml"'
    assert yaml.safe_load(exported.content) == yaml.safe_load(HIGRESS_YAML)

    submit_and_approve(member_api, staff_api, "weather")
    page = ok(anonymous_api.get("/api/v1/catalog/weather/"))
    assert sorted(tool["name"] for tool in page["latest_version"]["tools"]) == ["create_alert", "get_forecast"]
    assert "request_template" not in str(page)


def test_an_exported_higress_document_imports_into_a_new_version_identically(weather: None, member_api: Api) -> None:
    ok(member_api.post(DEFINE_URL, {"higress_yaml": HIGRESS_YAML}))
    exported = member_api.get(EXPORT_URL).content.decode()
    create_version(member_api, "weather", "1.1.0")

    body = ok(member_api.post(version_url("weather", "1.1.0", "rest-to-mcp/"), {"higress_yaml": exported}))

    assert member_api.get(version_url("weather", "1.1.0", "rest-to-mcp/higress.yaml")).content.decode() == exported
    assert len(body["tools"]) == 2


def test_a_client_that_accepts_only_yaml_gets_the_export(weather: None, member_api: Api) -> None:
    ok(member_api.post(DEFINE_URL, {"higress_yaml": HIGRESS_YAML}))

    response = member_api.get(EXPORT_URL, HTTP_ACCEPT="application/yaml")

    assert response.status_code == 200


def test_response_wrappers_and_output_schemas_survive_the_round_trip_and_config_stays_secret(
    weather: None, member_api: Api
) -> None:
    document = f"""\
server:
  name: weather-rest
  config:
    token: {CONFIG_SECRET}
tools:
- name: get_forecast
  description: Get the forecast.
  args:
  - name: city
    description: The city.
    type: string
    required: true
    position: query
  requestTemplate:
    url: {UPSTREAM}/v1/forecast
    method: GET
    headers:
    - key: Authorization
      value: Bearer {{{{.config.token}}}}
  responseTemplate:
    prependBody: 'Forecast:'
    appendBody: (end)
  outputSchema:
    type: object
"""
    body = ok(member_api.post(DEFINE_URL, {"higress_yaml": document}))

    assert body["spec"]["rest_to_mcp"]["has_config"] is True
    exported = member_api.get(EXPORT_URL)
    assert exported.status_code == 200, exported.content
    expected = yaml.safe_load(document)
    expected["server"]["config"]["token"] = "<redacted: set it again>"
    assert yaml.safe_load(exported.content) == expected
    assert CONFIG_SECRET not in str(body)
    row = ProductVersion.objects.values().get()
    assert CONFIG_SECRET not in str(row)
    assert all(CONFIG_SECRET not in str(tool) for tool in McpTool.objects.values())


def test_a_rest_to_mcp_server_is_defined_by_the_platforms_json_definition(weather: None, member_api: Api) -> None:
    body = ok(member_api.post(DEFINE_URL, {"definition": definition()}))

    assert [tool["name"] for tool in body["tools"]] == ["get_forecast"]
    assert body["upstream_url"] == f"{UPSTREAM}/v1"
    assert body["spec"] == {"rest_to_mcp": {"name": "weather-rest", "base_url": f"{UPSTREAM}/v1", "has_config": False}}


def test_a_rest_to_mcp_server_is_derived_from_an_openapi_document(weather: None, member_api: Api) -> None:
    body = ok(member_api.post(DEFINE_URL, {"openapi": OPENAPI_YAML}))

    assert sorted(tool["name"] for tool in body["tools"]) == ["createAlert", "getForecast", "listAlerts"]
    assert body["mcp_transport"] == "rest_to_mcp"


@pytest.mark.parametrize("name", ["get forecast!", "weather.get", "x" * 65, ""])
def test_illegal_tool_names_are_refused_and_change_nothing(weather: None, member_api: Api, name: str) -> None:
    ok(member_api.post(DEFINE_URL, {"definition": definition()}))

    problem = assert_problem(member_api.post(DEFINE_URL, {"definition": definition(name=name)}), 400, errors=True)

    assert "name" in all_messages(problem) + " ".join(problem["errors"])
    assert list(McpTool.objects.values_list("name", flat=True)) == ["get_forecast"]


def test_illegal_tool_names_in_higress_yaml_are_refused(weather: None, member_api: Api) -> None:
    document = HIGRESS_YAML.replace("name: get_forecast", "name: get forecast")

    problem = assert_problem(member_api.post(DEFINE_URL, {"higress_yaml": document}), 400, errors=True)

    assert "get forecast" in all_messages(problem)
    assert not McpTool.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, "Give exactly one of: a definition, Higress YAML, an OpenAPI document."),
        (
            {"definition": definition(), "higress_yaml": HIGRESS_YAML},
            "Give exactly one of: a definition, Higress YAML, an OpenAPI document.",
        ),
        ({"higress_yaml": "server: {name: x}\ntools: []\n"}, "tools"),
        ({"higress_yaml": HIGRESS_YAML + "allowTools: [get_forecast]\n"}, "allowTools is not supported"),
        ({"definition": {"name": "x", "base_url": UPSTREAM, "tools": []}}, "tools"),
    ],
)
def test_bad_definitions_are_refused_precisely(
    weather: None, member_api: Api, body: dict[str, Any], expected: str
) -> None:
    problem = assert_problem(member_api.post(DEFINE_URL, body), 400, errors=True)

    assert expected in all_messages(problem)
    assert ProductVersion.objects.get().mcp_transport == "streamable_http"


def test_a_version_without_rest_to_mcp_tools_has_nothing_to_export(weather: None, member_api: Api) -> None:
    problem = assert_problem(member_api.get(EXPORT_URL), 400, errors=True)

    assert all_messages(problem) == "This version's tools are not defined as REST-to-MCP; there is nothing to export."
