from __future__ import annotations

from typing import Any

import pytest
import yaml

from marketplace.specs.errors import SpecError
from marketplace.specs.higress import export_higress_yaml, import_higress_yaml
from marketplace.specs.openapi import parse_openapi
from marketplace.specs.rest_to_mcp import RestToMcpServer, render_request, render_response, tools_from_openapi
from tests.marketplace.specs.conftest import fixture_text


@pytest.fixture
def amap_yaml() -> str:
    return fixture_text("higress-amap.yaml")


def _normalized(config: dict[str, Any]) -> dict[str, Any]:
    """Higress's own defaults made explicit, so equivalent configurations compare equal."""
    for tool in config["tools"]:
        for arg in tool.get("args", []):
            arg.setdefault("type", "string")
            arg.setdefault("description", "")
            if arg.get("required") is False:
                del arg["required"]
            if "position" in arg:
                arg["position"] = arg["position"].lower()
        tool["requestTemplate"]["method"] = tool["requestTemplate"]["method"].upper()
    return config


def test_import_reads_every_supported_field(amap_yaml: str) -> None:
    server = import_higress_yaml(amap_yaml)
    assert (server.name, server.base_url, server.config) == (
        "amap-maps",
        "https://restapi.amap.com",
        {"apiKey": "your-api-key"},
    )
    geo, direction, note = server.tools
    assert geo.request.path == (
        "/v3/geocode/geo?key={{.config.apiKey}}&address={{.args.address}}&city={{.args.city}}&source=ts_mcp"
    )
    assert geo.input_schema == {
        "type": "object",
        "properties": {
            "address": {"type": "string", "description": "The structured address to parse"},
            "city": {"type": "string", "description": "The city to search in"},
        },
        "required": ["address"],
    }
    assert [(a.name, a.position) for a in direction.request.args] == [("origin", "query"), ("mode", "path")]
    assert direction.request.method == "GET"
    assert direction.request.args_to_url_param is True
    assert (direction.response_prepend, direction.response_append) == ("Route:\n", "\n(end)")
    assert note.request.args_to_json_body is True


def test_round_trip_is_lossless(amap_yaml: str) -> None:
    server = import_higress_yaml(amap_yaml)
    exported = export_higress_yaml(server)
    assert import_higress_yaml(exported) == server
    assert _normalized(yaml.safe_load(exported)) == _normalized(yaml.safe_load(amap_yaml))


def test_imported_tools_render_like_higress(amap_yaml: str) -> None:
    server = import_higress_yaml(amap_yaml)
    geo, direction, note = server.tools
    request = render_request(geo, {"address": "1 Main St & Co"}, config=server.config)
    assert request.path_with_query == (
        "/v3/geocode/geo?key=your-api-key&address=1%20Main%20St%20%26%20Co&city=&source=ts_mcp"
    )
    assert request.headers == [("x-api-key", "your-api-key")]
    body = '{"status": "1", "geocodes": [{"location": "116.48,39.99"}]}'
    assert render_response(geo, 200, body) == "# Geocoding\n- status: 1\n- location: 116.48,39.99\n"
    assert render_request(direction, {"origin": "A"}, config=server.config).path_with_query == (
        "/v3/direction/walking?origin=A"
    )
    assert render_response(direction, 200, "{}") == "Route:\n{}\n(end)"
    assert render_request(note, {"title": "t", "tags": ["x"]}).body == b'{"title":"t","tags":["x"]}'


def test_relative_urls_give_an_empty_base_url() -> None:
    server = import_higress_yaml(
        "server: {name: rel}\ntools:\n- name: ping\n  description: Ping\n  args: []\n"
        "  requestTemplate: {url: /ping, method: GET}\n"
    )
    assert (server.base_url, server.tools[0].request.path) == ("", "/ping")
    assert yaml.safe_load(export_higress_yaml(server))["tools"][0]["requestTemplate"]["url"] == "/ping"


def _config(**tool: Any) -> str:
    base: dict[str, Any] = {
        "name": "t",
        "description": "d",
        "args": [{"name": "q", "description": "query", "type": "string"}],
        "requestTemplate": {"url": "https://api.example.com/search", "method": "GET", "argsToUrlParam": True},
    }
    base.update(tool)
    return yaml.safe_dump({"server": {"name": "s"}, "tools": [base]})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            yaml.safe_dump({"server": {"name": "s"}, "allowTools": ["a"], "tools": []}),
            "allowTools: allowTools is not supported: remove the tools you do not want to expose instead.",
        ),
        (
            yaml.safe_dump({"server": {"name": "s", "securitySchemes": [{"id": "k", "type": "apiKey"}]}, "tools": []}),
            "server.securitySchemes: security schemes are not supported: send credentials with a header whose "
            "value reads them from server.config, e.g. 'Bearer {{.config.token}}'.",
        ),
        (
            _config(errorResponseTemplate="{{.message}}"),
            "tools[0].errorResponseTemplate: errorResponseTemplate is not supported: error responses are returned "
            "as 'HTTP <status>' followed by the body.",
        ),
        (
            _config(security={"id": "k"}),
            "tools[0].security: tool-level security is not supported: the marketplace authenticates callers itself.",
        ),
        (
            _config(requestTemplate={"method": "GET"}, responseTemplate={"body": "hi"}),
            "tools[0].requestTemplate.url: is required; tools that answer without an HTTP request "
            "(direct-response tools) are not supported.",
        ),
        (
            _config(responseTemplate={"body": "{{- range $i, $g := .geocodes }}{{ $g.location }}{{- end }}"}),
            "The REST-to-MCP definition is invalid: tools[0].responseTemplate.body: unsupported template action "
            "'{{- range $i, $g := .geocodes }}' at character 1: only field references such as {{.args.name}} are "
            "supported (no functions, pipelines, range, if or with).",
        ),
        (
            _config(args=[{"name": "q", "description": "x", "type": "text"}]),
            "tools[0].args[0].type: 'text' is not one of string, number, integer, boolean, array, object.",
        ),
        (
            _config(args=[{"name": "q", "description": "x", "format": "email"}]),
            "tools[0].args[0].format: unknown field (expected: name, type, description, enum, default, items, "
            "properties, required, position).",
        ),
        (
            _config(requestTemplate={"url": "https://{{.config.host}}/x", "method": "GET"}),
            "tools[0].requestTemplate.url: templates are only supported in the URL's path and query, not its host.",
        ),
        (
            yaml.safe_dump({"server": {"name": "s", "type": "mcp-proxy"}, "tools": []}),
            "server.type: 'mcp-proxy' is not supported; only 'rest' servers can be imported.",
        ),
    ],
)
def test_unsupported_configuration_is_refused_precisely(config: str, message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        import_higress_yaml(config)
    assert excinfo.value.message == message


def test_tools_on_different_hosts_are_refused() -> None:
    config = yaml.safe_load(_config())
    second = dict(config["tools"][0], name="u")
    second["requestTemplate"] = {"url": "https://other.example.com/x", "method": "GET", "argsToUrlParam": True}
    config["tools"].append(second)
    with pytest.raises(SpecError) as excinfo:
        import_higress_yaml(yaml.safe_dump(config))
    assert excinfo.value.message == (
        "The tools call different hosts ('https://api.example.com', 'https://other.example.com'); a REST-to-MCP "
        "server has one base URL, so import them as separate servers."
    )


def test_semantic_problems_are_reported_in_higress_terms() -> None:
    config = _config(requestTemplate={"url": "https://api.example.com/items/{id}", "method": "GET"})
    with pytest.raises(SpecError) as excinfo:
        import_higress_yaml(config)
    assert excinfo.value.details == [
        "tools[0].requestTemplate.url: placeholder {id} has no argument with position 'path'",
        "tools[0].args[0]: argument 'q' is never sent: give it a position, or use it as {{.args.q}} in a template, "
        "or set one of the argsToJsonBody/argsToUrlParam/argsToFormBody flags",
    ]


def test_illegal_tool_and_argument_names_are_refused() -> None:
    with pytest.raises(SpecError) as excinfo:
        import_higress_yaml(_config(name="maps.geo", args=[{"name": "城市", "description": "city"}]))
    assert excinfo.value.details[0] == (
        "tools[0].name: the tool name 'maps.geo' contains characters that are not allowed: '.'; "
        "use only letters A-Z and a-z, digits, '_' and '-'"
    )
    assert excinfo.value.details[1].startswith(
        "tools[0].args[0].name: the argument name '城市' contains characters that are not allowed"
    )


def test_yaml_alias_bombs_are_refused() -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 10) + "]")
    with pytest.raises(SpecError, match="likely alias bomb"):
        import_higress_yaml("\n".join(lines))


def test_export_of_openapi_tools_drops_what_higress_cannot_express(petstore_yaml: str) -> None:
    tools = [t for t in tools_from_openapi(parse_openapi(petstore_yaml)) if t.name in ("getPetById", "addPet")]
    server = RestToMcpServer(name="pets", base_url="https://petstore.example.com/api/v3", tools=tools)
    exported = yaml.safe_load(export_higress_yaml(server))
    get_pet = exported["tools"][1]
    assert get_pet == {
        "name": "getPetById",
        "description": "Find pet by ID",
        "args": [
            {"name": "petId", "description": "ID of pet", "type": "integer", "required": True, "position": "path"}
        ],
        "requestTemplate": {"url": "https://petstore.example.com/api/v3/pet/{petId}", "method": "GET"},
    }
    with pytest.raises(SpecError) as excinfo:
        export_higress_yaml(server, strict=True)
    assert excinfo.value.message.startswith(
        "Exporting to Higress would lose tools[0].input_schema.additionalProperties"
    )
    assert "tools[1].args[0].format" in excinfo.value.details


def test_export_refuses_renamed_arguments(petstore_yaml: str) -> None:
    tools = [t for t in tools_from_openapi(parse_openapi(petstore_yaml)) if t.name == "getInventory"]
    with pytest.raises(SpecError) as excinfo:
        export_higress_yaml(RestToMcpServer(name="pets", base_url="https://x.example", tools=tools))
    assert excinfo.value.message == (
        "tools[0].args[0]: argument 'filter_status' is sent as 'filter[status]', and Higress cannot send an "
        "argument under another name."
    )
