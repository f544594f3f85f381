"""Publishing an MCP server end to end through the API: its tools, resources and prompts
discovered from a real MCP server (the ``mcp`` SDK, on loopback), reviewed, then in the
catalog with their schemas. Unreachable, non-MCP and refused URLs are reported."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import override_settings
from mcp.server.mcpserver import MCPServer

from accounts.models import AuditEvent
from marketplace.models import McpTool
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
from tests.marketplace.api.servers import serve_mcp

DISCOVER_URL = version_url("weather", "1.0.0", "discover/")


@pytest.fixture
def weather(member_api: Api) -> None:
    create_product(member_api, "weather", "mcp_server")
    create_version(member_api, "weather", "1.0.0")


def set_upstream(api: Api, url: str) -> None:
    ok(api.patch(version_url("weather", "1.0.0"), {"upstream_url": url}))


def mcp_server_with_tool(name: str) -> MCPServer:
    server = MCPServer("odd-names")

    @server.tool(name=name)
    def lookup(city: str) -> str:
        """Get the weather."""
        return city

    return server


@pytest.fixture(scope="module")
def dotted_tool_mcp_url() -> Iterator[str]:
    """A tool name legal in MCP but not for LLM providers (a dot): the gateway maps it."""
    with serve_mcp(mcp_server_with_tool("weather.get")) as url:
        yield url


@pytest.fixture(scope="module")
def illegal_tool_mcp_url() -> Iterator[str]:
    """A tool name MCP itself does not allow (a space and a slash)."""
    with serve_mcp(mcp_server_with_tool("get weather/now")) as url:
        yield url


@pytest.fixture(scope="module")
def long_tool_mcp_url() -> Iterator[str]:
    """A 100-character tool name: legal in MCP (128 at most), longer than the column."""
    with serve_mcp(mcp_server_with_tool("w" * 100)) as url:
        yield url


def test_an_mcp_server_is_published_with_the_tools_discovered_from_it(
    weather: None, member_api: Api, staff_api: Api, anonymous_api: Api, mcp_url: str
) -> None:
    set_upstream(member_api, mcp_url)

    body = ok(member_api.post(DISCOVER_URL))

    assert body["mcp_transport"] == "streamable_http"
    tools = {tool["name"]: tool for tool in body["tools"]}
    assert sorted(tools) == ["get_forecast", "list_alerts"]
    forecast = tools["get_forecast"]
    assert forecast["title"] == "Weather forecast"
    assert forecast["description"] == "Get the weather forecast for a city, for up to a week."
    assert forecast["input_schema"]["required"] == ["city"]
    assert set(forecast["input_schema"]["properties"]) == {"city", "days"}
    assert set(forecast["output_schema"]["properties"]) == {"city", "days", "summary"}
    assert forecast["annotations"]["readOnlyHint"] is True
    assert body["spec"]["server_info"]["name"] == "weather"
    assert [r["uri"] for r in body["spec"]["resources"]] == ["weather://cities"]
    assert [p["name"] for p in body["spec"]["prompts"]] == ["plan_trip"]
    assert body["missing_for_submission"] == []
    assert AuditEvent.objects.get(action="version.discover_mcp").changes == {"tools": 2, "resources": 1, "prompts": 1}

    submit_and_approve(member_api, staff_api, "weather")

    page = ok(anonymous_api.get("/api/v1/catalog/weather/"))
    assert page["kind"] == "mcp_server"
    listed = {tool["name"]: tool for tool in page["latest_version"]["tools"]}
    assert listed["get_forecast"]["input_schema"] == forecast["input_schema"]
    assert listed["get_forecast"]["output_schema"] == forecast["output_schema"]


def test_discovering_again_refreshes_the_tools(weather: None, member_api: Api, mcp_url: str) -> None:
    set_upstream(member_api, mcp_url)
    ok(member_api.post(DISCOVER_URL))

    body = ok(member_api.post(DISCOVER_URL))

    assert sorted(tool["name"] for tool in body["tools"]) == ["get_forecast", "list_alerts"]
    assert McpTool.objects.count() == 2


def test_discovery_needs_an_upstream_url(weather: None, member_api: Api) -> None:
    problem = assert_problem(member_api.post(DISCOVER_URL), 400, errors=True)

    assert problem["errors"] == {"upstream_url": ["Set the MCP server's URL first."]}


def test_an_unreachable_mcp_server_is_reported(weather: None, member_api: Api) -> None:
    set_upstream(member_api, "http://127.0.0.1:1/mcp")

    problem = assert_problem(member_api.post(DISCOVER_URL), 400, errors=True)

    assert problem["errors"] == {"upstream_url": ["Cannot connect to 127.0.0.1 port 1: the connection was refused."]}
    assert not McpTool.objects.exists()


def test_a_url_that_is_not_an_mcp_server_is_reported(weather: None, member_api: Api, document_server: str) -> None:
    set_upstream(member_api, f"{document_server}/index.html")

    problem = assert_problem(member_api.post(DISCOVER_URL), 400, errors=True)

    assert "MCP" in all_messages(problem)
    assert not McpTool.objects.exists()


def test_tool_names_that_mcp_does_not_allow_are_refused(
    weather: None, member_api: Api, illegal_tool_mcp_url: str
) -> None:
    set_upstream(member_api, illegal_tool_mcp_url)

    problem = assert_problem(member_api.post(DISCOVER_URL), 400, errors=True)

    assert problem["errors"]["upstream_url"][0] == (
        "The server's tools have an illegal name: 'get weather/now' contains characters MCP does not allow "
        "in tool names: ' ' (space), '/'. Tool names must be 1 to 128 characters of letters, digits, '_', '-' and '.'."
    )
    assert not McpTool.objects.exists()


def test_tool_names_legal_in_mcp_are_kept_for_the_gateway_to_map(
    weather: None, member_api: Api, dotted_tool_mcp_url: str
) -> None:
    set_upstream(member_api, dotted_tool_mcp_url)

    body = ok(member_api.post(DISCOVER_URL))

    assert [tool["name"] for tool in body["tools"]] == ["weather.get"]


def test_a_long_tool_name_legal_in_mcp_is_kept(weather: None, member_api: Api, long_tool_mcp_url: str) -> None:
    set_upstream(member_api, long_tool_mcp_url)

    body = ok(member_api.post(DISCOVER_URL))

    assert [tool["name"] for tool in body["tools"]] == ["w" * 100]


def test_discovery_of_a_private_address_is_refused_by_the_ssrf_guard(
    weather: None, member_api: Api, mcp_url: str
) -> None:
    set_upstream(member_api, mcp_url)

    with override_settings(SSRF_ALLOW_LOOPBACK=False):
        problem = assert_problem(member_api.post(DISCOVER_URL), 400, errors=True)

    assert problem["errors"] == {
        "upstream_url": ["127.0.0.1 resolves to a loopback address, which the platform does not call."]
    }
    assert not McpTool.objects.exists()


def test_discovery_applies_only_to_mcp_servers(member_api: Api, mcp_url: str) -> None:
    create_product(member_api, "llm", "model_api")
    create_version(member_api, "llm", "1.0.0")

    problem = assert_problem(member_api.post(version_url("llm", "1.0.0", "discover/")), 400, errors=True)

    assert "does not apply" in all_messages(problem)
