"""demo-tools through the mcp SDK's own client over Streamable HTTP, in both protocol eras:
the initialize handshake ("legacy") and the 2026 per-request envelope ("auto" negotiates it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import httpx
import pytest
from mcp import Client, MCPError
from mcp.types import INVALID_PARAMS, TextContent, TextResourceContents, Tool

from demo_upstreams.demo_mcp import create_app, create_server
from demo_upstreams.inprocess import serve_asgi
from tests.demo_upstreams.conftest import MCP_TOOLS_PAGE_SIZE

pytestmark = pytest.mark.anyio

TOOL_NAMES = ["add_numbers", "convert_units", "word_count", "current_time", "lookup_country", "slugify"]
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@asynccontextmanager
async def connect(url: str, mode: str) -> AsyncIterator[Client]:
    async with Client(url, mode=mode) as client:
        yield client


async def all_tools(client: Client) -> tuple[list[Tool], int]:
    """Every tool, following nextCursor; and how many pages that took."""
    tools: list[Tool] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            return tools, pages


def text_of(result: Any) -> str:
    content = result.content[0]
    assert isinstance(content, TextContent)
    return content.text


async def test_the_initialize_handshake_names_the_server_and_its_capabilities(mcp_url: str) -> None:
    async with connect(mcp_url, "legacy") as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None
        assert client.server_info.name == "demo-tools"
        assert client.server_info.version == "1.0.0"
        capabilities = client.server_capabilities
        assert capabilities.tools is not None
        assert capabilities.resources is not None
        assert capabilities.prompts is not None
        assert client.instructions is not None
        assert "unit conversion" in client.instructions


async def test_auto_mode_negotiates_the_modern_protocol(mcp_url: str) -> None:
    async with connect(mcp_url, "auto") as client:
        assert client.protocol_version == "2026-07-28"
        assert client.server_info is not None
        assert client.server_info.name == "demo-tools"


async def test_tools_are_listed_in_pages_each_with_input_and_output_schemas(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        tools, pages = await all_tools(client)

    assert [tool.name for tool in tools] == TOOL_NAMES
    assert pages == -(-len(TOOL_NAMES) // MCP_TOOLS_PAGE_SIZE)
    for tool in tools:
        assert tool.description
        assert tool.input_schema["type"] == "object"
        assert tool.output_schema is not None
        assert tool.output_schema["type"] == "object"
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True
    by_name = {tool.name: tool for tool in tools}
    assert by_name["convert_units"].input_schema["required"] == ["value", "from_unit", "to_unit"]
    assert "K" in str(by_name["convert_units"].input_schema)
    assert set(by_name["lookup_country"].output_schema["required"]) >= {"capital", "currency_code", "calling_code"}


async def test_a_forged_cursor_is_invalid_params(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.list_tools(cursor="not-a-cursor", cache_mode="bypass")

    assert raised.value.code == INVALID_PARAMS


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("add_numbers", {"a": 2, "b": 3.5}, {"sum": 5.5}),
        (
            "convert_units",
            {"value": 100, "from_unit": "C", "to_unit": "F"},
            {"value": 212.0, "unit": "F", "input_value": 100.0, "input_unit": "C", "quantity": "temperature"},
        ),
        (
            "convert_units",
            {"value": 1, "from_unit": "mi", "to_unit": "km"},
            {"value": 1.609344, "unit": "km", "input_value": 1.0, "input_unit": "mi", "quantity": "length"},
        ),
        (
            "convert_units",
            {"value": 1, "from_unit": "lb", "to_unit": "g"},
            {"value": 453.59237, "unit": "g", "input_value": 1.0, "input_unit": "lb", "quantity": "mass"},
        ),
        (
            "word_count",
            {"text": "Hello world. It's a test!\nA second line"},
            {
                "words": 8,
                "unique_words": 7,
                "characters": 39,
                "characters_excluding_spaces": 32,
                "sentences": 2,
                "lines": 2,
            },
        ),
        (
            "lookup_country",
            {"query": "jpn"},
            {
                "name": "Japan",
                "iso2": "JP",
                "iso3": "JPN",
                "capital": "Tokyo",
                "currency_code": "JPY",
                "currency_name": "Japanese yen",
                "calling_code": "+81",
                "region": "Asia",
            },
        ),
        ("slugify", {"text": "Héllo, Wörld! Ça va?"}, {"slug": "hello-world-ca-va", "length": 17}),
        ("slugify", {"text": "one two three", "separator": "_", "max_length": 9}, {"slug": "one_two", "length": 7}),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
async def test_each_tool_returns_structured_content(
    mcp_url: str, mode: str, name: str, arguments: dict[str, Any], expected: dict[str, Any]
) -> None:
    async with connect(mcp_url, mode) as client:
        result = await client.call_tool(name, arguments)

    assert result.is_error is False
    assert result.structured_content == expected


async def test_current_time_answers_in_the_requested_zone(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        tokyo = await client.call_tool("current_time", {"timezone": "Asia/Tokyo"})
        default = await client.call_tool("current_time", {})

    assert tokyo.structured_content is not None
    assert tokyo.structured_content["utc_offset"] == "+09:00"
    assert tokyo.structured_content["is_dst"] is False
    moment = datetime.fromisoformat(tokyo.structured_content["iso8601"])
    assert int(moment.timestamp()) == tokyo.structured_content["unix_seconds"]
    assert default.structured_content is not None
    assert default.structured_content["timezone"] == "UTC"


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("convert_units", {"value": 1, "from_unit": "kg", "to_unit": "m"}, "cannot convert kg (mass) to m (length)"),
        ("convert_units", {"value": -300, "from_unit": "C", "to_unit": "K"}, "below absolute zero"),
        ("current_time", {"timezone": "Mars/Olympus_Mons"}, "unknown time zone"),
        ("current_time", {"timezone": "../../etc/passwd"}, "unknown time zone"),
        ("lookup_country", {"query": "Atlantis"}, "no country matches"),
    ],
)
async def test_a_domain_error_is_a_tool_result_with_is_error(
    mcp_url: str, mode: str, name: str, arguments: dict[str, Any], message: str
) -> None:
    async with connect(mcp_url, mode) as client:
        result = await client.call_tool(name, arguments)

    assert result.is_error is True
    assert message in text_of(result)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("add_numbers", {"a": "two", "b": 1}),
        ("add_numbers", {"a": 1}),
        ("convert_units", {"value": 1, "from_unit": "parsec", "to_unit": "m"}),
        ("slugify", {"text": "x", "max_length": 0}),
        ("no_such_tool", {}),
    ],
)
async def test_bad_arguments_or_an_unknown_tool_are_tool_results_with_is_error(
    mcp_url: str, mode: str, name: str, arguments: dict[str, Any]
) -> None:
    async with connect(mcp_url, mode) as client:
        result = await client.call_tool(name, arguments)

    assert result.is_error is True
    assert result.structured_content is None


async def test_resources_list_and_read(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        listed = await client.list_resources()
        templates = await client.list_resource_templates()
        countries = await client.read_resource("demo://countries")
        france = await client.read_resource("demo://countries/fr")
        units = await client.read_resource("demo://units")

    assert {str(resource.uri) for resource in listed.resources} == {"demo://countries", "demo://units"}
    assert [template.uri_template for template in templates.resource_templates] == ["demo://countries/{code}"]
    contents = countries.contents[0]
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == "application/json"
    assert '"iso2": "JP"' in contents.text
    france_contents = france.contents[0]
    assert isinstance(france_contents, TextResourceContents)
    assert '"capital": "Paris"' in france_contents.text
    units_contents = units.contents[0]
    assert isinstance(units_contents, TextResourceContents)
    assert '"temperature": ["C", "F", "K"]' in units_contents.text


async def test_reading_an_unknown_country_is_an_error(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.read_resource("demo://countries/zz")

    assert raised.value.code == INVALID_PARAMS


async def test_prompts_list_and_render(mcp_url: str, mode: str) -> None:
    async with connect(mcp_url, mode) as client:
        listed = await client.list_prompts()
        briefing = await client.get_prompt("country_briefing", {"country": "Kenya"})
        recipe = await client.get_prompt("convert_recipe", {"recipe": "1 lb flour"})

    by_name = {prompt.name: prompt for prompt in listed.prompts}
    assert set(by_name) == {"country_briefing", "convert_recipe"}
    assert [(arg.name, arg.required) for arg in by_name["country_briefing"].arguments or []] == [("country", True)]
    assert [(arg.name, arg.required) for arg in by_name["convert_recipe"].arguments or []] == [
        ("recipe", True),
        ("system", False),
    ]
    message = briefing.messages[0]
    assert message.role == "user"
    assert isinstance(message.content, TextContent)
    assert "lookup_country" in message.content.text
    assert "'Kenya'" in message.content.text
    recipe_message = recipe.messages[0]
    assert isinstance(recipe_message.content, TextContent)
    assert "metric" in recipe_message.content.text


@pytest.mark.parametrize(("name", "arguments"), [("country_briefing", {}), ("no_such_prompt", {"x": "y"})])
async def test_a_prompt_without_its_arguments_or_unknown_is_invalid_params(
    mcp_url: str, mode: str, name: str, arguments: dict[str, str]
) -> None:
    async with connect(mcp_url, mode) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt(name, arguments)

    assert raised.value.code == INVALID_PARAMS


async def test_loopback_host_headers_are_accepted_and_others_refused(mcp_url: str) -> None:
    port = httpx.URL(mcp_url).port
    async with httpx.AsyncClient() as http:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}"):
            accepted = await http.post(mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": host})
            assert accepted.status_code == 200, host
            session = accepted.headers.get("mcp-session-id")
            if session:
                await http.delete(mcp_url, headers={"Host": host, "mcp-session-id": session})
        for host in ("evil.example", f"evil.example:{port}", "127.0.0.1", f"127.0.0.1:{port + 1}"):
            refused = await http.post(mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": host})
            assert refused.status_code == 421, host
        foreign_origin = await http.post(
            mcp_url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
        )
        assert foreign_origin.status_code == 403


async def test_an_extra_allowed_host_is_accepted() -> None:
    with serve_asgi(lambda port: create_app(port=port, extra_hosts=["demo-tools.internal:9103"])) as base_url:
        async with httpx.AsyncClient() as http:
            response = await http.post(
                f"{base_url}/mcp", json=INITIALIZE, headers={**MCP_HEADERS, "Host": "demo-tools.internal:9103"}
            )

    assert response.status_code == 200


async def test_a_stateless_json_server_serves_the_same_tools(mode: str) -> None:
    with serve_asgi(lambda port: create_app(port=port, stateless=True, json_response=True)) as base_url:
        async with connect(f"{base_url}/mcp", mode) as client:
            page = await client.list_tools()
            result = await client.call_tool("add_numbers", {"a": 1, "b": 2})

    assert [tool.name for tool in page.tools] == TOOL_NAMES
    assert page.next_cursor is None
    assert result.structured_content == {"sum": 3.0}


async def test_the_server_also_runs_in_memory() -> None:
    async with Client(create_server(tools_page_size=2)) as client:
        tools, pages = await all_tools(client)
        result = await client.call_tool("word_count", {"text": "a b"})

    assert len(tools) == len(TOOL_NAMES)
    assert pages == 3
    assert result.structured_content is not None
    assert result.structured_content["words"] == 2


async def test_healthz(mcp_url: str) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(mcp_url.removesuffix("/mcp") + "/healthz")

    assert response.json() == {"status": "ok", "product": "demo-tools"}
