from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from marketplace.specs.errors import SpecError
from marketplace.specs.openapi import parse_openapi
from marketplace.specs.rest_to_mcp import (
    ArgMapping,
    RestToMcpServer,
    RestToMcpTool,
    join_url,
    render_request,
    render_response,
    tools_from_openapi,
    validate_definition,
)


@pytest.fixture
def petstore_tools(petstore_yaml: str) -> dict[str, RestToMcpTool]:
    return {t.name: t for t in tools_from_openapi(parse_openapi(petstore_yaml))}


@pytest.fixture
def weather_tools(weather_json: str) -> dict[str, RestToMcpTool]:
    return {t.name: t for t in tools_from_openapi(parse_openapi(weather_json))}


def _definition(**tool_overrides: Any) -> dict[str, Any]:
    """A small valid definition; ``request`` overrides merge into the request."""
    tool: dict[str, Any] = {
        "name": "get_order",
        "description": "Fetch one order.",
        "input_schema": {
            "type": "object",
            "properties": {"orderId": {"type": "string"}, "expand": {"type": "boolean"}},
            "required": ["orderId"],
        },
        "output_schema": None,
        "request": {
            "method": "GET",
            "path": "/orders/{orderId}",
            "args": [
                {"name": "orderId", "position": "path", "required": True, "wire_name": None},
                {"name": "expand", "position": "query", "required": False, "wire_name": None},
            ],
            "headers": [{"key": "Authorization", "value": "Bearer {{.config.token}}"}],
            "body_template": None,
            "args_to_json_body": False,
            "args_to_url_param": False,
            "args_to_form_body": False,
        },
        "response_template": None,
        "response_prepend": "",
        "response_append": "",
    }
    request_overrides = tool_overrides.pop("request", {})
    tool.update(tool_overrides)
    tool["request"].update(request_overrides)
    return {"name": "orders", "base_url": "https://api.shop.example", "config": {"token": "t0k"}, "tools": [tool]}


# --- tools_from_openapi -------------------------------------------------------------------------


def test_one_tool_per_operation_with_sanitized_unique_names(petstore_tools: dict[str, RestToMcpTool]) -> None:
    assert list(petstore_tools) == [
        "addPet",
        "findPetsByStatus",
        "getPetById",
        "updatePetWithForm",
        "deletePet",
        "getInventory",
    ]  # uploadFile (multipart) is skipped


def test_names_fall_back_to_method_and_path(weather_tools: dict[str, RestToMcpTool]) -> None:
    assert list(weather_tools) == ["weather_current_get", "post_alerts", "putNote"]


def test_parameters_become_positioned_arguments(petstore_tools: dict[str, RestToMcpTool]) -> None:
    find = petstore_tools["findPetsByStatus"]
    assert [(a.name, a.position, a.required) for a in find.request.args] == [
        ("status", "query", False),
        ("limit", "query", False),
        ("X-Request-ID", "header", False),
    ]  # the Accept header parameter is ignored, as OpenAPI says
    assert find.input_schema["properties"]["limit"] == {
        "type": "integer",
        "default": 20,
        "maximum": 100,
        "description": "How many pets to return.",
    }
    assert find.description == (
        "Finds Pets by status\n\nMultiple status values can be provided with comma separated strings."
    )
    delete = petstore_tools["deletePet"]
    assert [(a.name, a.position) for a in delete.request.args] == [
        ("petId", "path"),
        ("api_key", "header"),
        ("session", "cookie"),
    ]
    assert delete.description == "(Deprecated) Deletes a pet"


def test_json_body_properties_become_body_arguments(petstore_tools: dict[str, RestToMcpTool]) -> None:
    add = petstore_tools["addPet"]
    assert [(a.name, a.position, a.required) for a in add.request.args] == [
        ("name", "body", True),
        ("category", "body", False),
        ("photoUrls", "body", True),
        ("tags", "body", False),
        ("status", "body", False),
    ]  # the readOnly id is not an input
    assert add.input_schema["required"] == ["name", "photoUrls"]
    assert add.input_schema["additionalProperties"] is False


def test_illegal_parameter_names_keep_their_wire_name(petstore_tools: dict[str, RestToMcpTool]) -> None:
    inventory = petstore_tools["getInventory"]
    assert inventory.request.args == [
        ArgMapping("filter_status", "query", False, "filter[status]"),
        ArgMapping("min_count", "query", False, "min.count"),
    ]


def test_non_object_bodies_are_one_body_argument(weather_tools: dict[str, RestToMcpTool]) -> None:
    alerts = weather_tools["post_alerts"]
    assert alerts.request.args == [ArgMapping("body", None, True)]
    assert alerts.request.body_template == "{{.args.body}}"
    assert alerts.input_schema["properties"]["body"]["type"] == "array"


def test_every_generated_definition_validates(
    petstore_tools: dict[str, RestToMcpTool], weather_tools: dict[str, RestToMcpTool]
) -> None:
    for tools in (petstore_tools, weather_tools):
        server = RestToMcpServer(name="s", base_url="https://api.example.com/v1", tools=list(tools.values()))
        assert validate_definition(server.to_dict()) == server
        assert validate_definition(json.loads(json.dumps(server.to_dict()))) == server


# --- validate_definition -------------------------------------------------------------------------


def test_a_valid_definition_round_trips() -> None:
    server = validate_definition(_definition())
    assert server.tools[0].request.headers[0].value == "Bearer {{.config.token}}"
    assert validate_definition(server.to_dict()) == server


def _problems(definition: dict[str, Any]) -> list[str]:
    with pytest.raises(SpecError) as excinfo:
        validate_definition(definition)
    assert excinfo.value.message.startswith("The REST-to-MCP definition is invalid: ")
    return excinfo.value.details


def test_placeholder_without_path_argument_is_refused() -> None:
    definition = _definition(request={"path": "/orders/{orderId}/lines/{lineId}"})
    assert _problems(definition) == ["tools[0].request.path: placeholder {lineId} has no argument with position 'path'"]


def test_path_argument_without_placeholder_is_refused() -> None:
    assert _problems(_definition(request={"path": "/orders"})) == [
        "tools[0].request.args[0]: path argument 'orderId' has no {orderId} placeholder in the path"
    ]


def test_invalid_positions_schemas_and_names_are_all_reported() -> None:
    definition = _definition(name="get order", input_schema={"type": "object", "properties": {"orderId": {"type": 7}}})
    definition["tools"][0]["request"]["args"][1]["position"] = "fragment"
    problems = _problems(definition)
    assert problems[0] == (
        "tools[0].name: the tool name 'get order' contains characters that are not allowed: ' ' (space); "
        "use only letters A-Z and a-z, digits, '_' and '-'"
    )
    assert problems[1].startswith("tools[0].input_schema: not a valid JSON Schema: 7 is not valid under any of")
    assert (
        "tools[0].request.args[1].position: 'fragment' is not one of path, query, header, cookie, body (or null)"
        in problems
    )


def test_schema_and_args_must_match() -> None:
    definition = _definition(
        input_schema={"type": "object", "properties": {"orderId": {"type": "string"}, "ghost": {}}, "required": []}
    )
    assert _problems(definition) == [
        "tools[0].input_schema.properties: 'ghost' has no entry in request.args",
        "tools[0].input_schema.properties: argument 'expand' is missing from the schema",
        "tools[0].request.args: argument 'orderId' is required here but not listed in input_schema.required",
    ]


def test_duplicate_tool_names_and_unknown_fields_are_refused() -> None:
    definition = _definition()
    definition["tools"].append(copy.deepcopy(definition["tools"][0]))
    definition["tools"][1]["respons_template"] = "{{.x}}"
    assert _problems(definition) == [
        "tools[1]: unknown field 'respons_template' (expected: name, description, input_schema, output_schema, "
        "request, response_template, response_prepend, response_append)",
        "tools[1].name: 'get_order' is already the name of tools[0]",
    ]


def test_template_references_must_exist() -> None:
    definition = _definition(request={"headers": [{"key": "X-Key", "value": "{{.config.missing}} {{.args.nope}}"}]})
    assert _problems(definition) == [
        "tools[0].request.headers[0].value: {{.config.missing}} refers to a config value that is not set",
        "tools[0].request.headers[0].value: {{.args.nope}} refers to an argument that does not exist",
    ]


def test_unsupported_template_actions_are_refused() -> None:
    definition = _definition(response_template="{{range .items}}{{.name}}{{end}}")
    assert _problems(definition) == [
        "tools[0].response_template: unsupported template action '{{range .items}}' at character 1: only field "
        "references such as {{.args.name}} are supported (no functions, pipelines, range, if or with)"
    ]


def test_arguments_that_are_never_sent_are_refused() -> None:
    definition = _definition()
    definition["tools"][0]["request"]["args"][1]["position"] = None
    assert _problems(definition) == [
        "tools[0].request.args[1]: argument 'expand' is never sent: give it a position, or use it as "
        "{{.args.expand}} in a template, or set one of the args_to_* flags"
    ]


def test_base_url_must_be_http_without_credentials() -> None:
    assert _problems({**_definition(), "base_url": "ftp://files.example"}) == [
        "base_url: 'ftp://files.example' is not an absolute http(s) URL"
    ]
    assert _problems({**_definition(), "base_url": "https://user:pw@api.example"}) == [
        "base_url: must not carry credentials; put them in config and reference them in a header"
    ]


def test_only_one_bulk_flag() -> None:
    definition = _definition(request={"args_to_json_body": True, "args_to_form_body": True})
    assert "tools[0].request: only one of args_to_json_body, args_to_url_param and args_to_form_body can be set" in (
        _problems(definition)
    )


def test_a_definition_needs_tools() -> None:
    assert _problems({"name": "x", "tools": []}) == ["tools: a REST-to-MCP server needs a list of at least one tool"]


# --- render_request ------------------------------------------------------------------------------


def test_path_arguments_are_percent_encoded() -> None:
    tool = validate_definition(_definition()).tools[0]
    request = render_request(tool, {"orderId": "a/b c?d#e", "expand": True}, config={"token": "t0k"})
    assert request.method == "GET"
    assert request.path_with_query == "/orders/a%2Fb%20c%3Fd%23e?expand=true"
    assert request.headers == [("Authorization", "Bearer t0k")]
    assert request.body is None


@pytest.mark.parametrize("value", ["", ".", ".."])
def test_path_arguments_cannot_walk_the_path(value: str) -> None:
    tool = validate_definition(_definition()).tools[0]
    with pytest.raises(SpecError) as excinfo:
        render_request(tool, {"orderId": value}, config={"token": "t"})
    assert excinfo.value.message == (
        f"The path argument 'orderId' cannot be {value!r}: it would change which resource the URL names."
    )


def test_template_values_cannot_walk_the_path_either() -> None:
    definition = _definition(request={"path": "/orders/{orderId}/files/{{.args.expand}}"})
    definition["tools"][0]["input_schema"]["properties"]["expand"] = {"type": "string"}
    tool = validate_definition(definition).tools[0]
    with pytest.raises(SpecError) as excinfo:
        render_request(tool, {"orderId": "1", "expand": ".."}, config={"token": "t"})
    assert excinfo.value.message == (
        "{{.args.expand}} cannot be '..' in the URL path: it would change which resource it names."
    )
    request = render_request(tool, {"orderId": "1", "expand": "../../admin"}, config={"token": "t"})
    assert request.path_with_query == "/orders/1/files/..%2F..%2Fadmin?expand=..%2F..%2Fadmin"


def test_missing_required_arguments_are_named_with_their_place(petstore_tools: dict[str, RestToMcpTool]) -> None:
    with pytest.raises(SpecError) as excinfo:
        render_request(petstore_tools["addPet"], {"status": "sold"})
    assert excinfo.value.message == (
        "addPet is missing required arguments 'name' (body member), 'photoUrls' (body member)."
    )
    assert excinfo.value.field == "arguments.name"
    with pytest.raises(SpecError, match=r"^getPetById is missing required argument 'petId' \(path parameter\)\.$"):
        render_request(petstore_tools["getPetById"], {})


def test_unknown_arguments_are_refused(petstore_tools: dict[str, RestToMcpTool]) -> None:
    with pytest.raises(SpecError) as excinfo:
        render_request(petstore_tools["getPetById"], {"petId": 1, "pet_id": 2})
    assert excinfo.value.message == "getPetById has no argument 'pet_id'; it takes: petId."


def test_arguments_are_checked_against_the_schema(petstore_tools: dict[str, RestToMcpTool]) -> None:
    with pytest.raises(SpecError) as excinfo:
        render_request(petstore_tools["findPetsByStatus"], {"status": ["lost"], "limit": 500})
    assert excinfo.value.details == [
        "arguments.limit: 500 is greater than the maximum of 100",
        "arguments.status[0]: 'lost' is not one of ['available', 'pending', 'sold']",
    ]


def test_numeric_and_boolean_strings_are_coerced_and_defaults_applied(
    petstore_tools: dict[str, RestToMcpTool],
) -> None:
    request = render_request(petstore_tools["getPetById"], {"petId": "42"})
    assert request.path_with_query == "/pet/42"
    find = render_request(petstore_tools["findPetsByStatus"], {"status": ["available", "sold"], "X-Request-ID": None})
    assert find.path_with_query == "/pet/findByStatus?status=available&status=sold&limit=20"
    assert find.headers == []


def test_query_header_and_cookie_arguments(petstore_tools: dict[str, RestToMcpTool]) -> None:
    request = render_request(petstore_tools["deletePet"], {"petId": 7, "api_key": "k-1", "session": "s=1; evil"})
    assert request.path_with_query == "/pet/7"
    assert request.headers == [("api_key", "k-1"), ("Cookie", "session=s%3D1%3B%20evil")]
    inventory = render_request(petstore_tools["getInventory"], {"filter_status": "a&b=c", "min_count": 3})
    assert inventory.path_with_query == "/store/inventory?filter%5Bstatus%5D=a%26b%3Dc&min.count=3"


def test_header_values_cannot_inject_lines(petstore_tools: dict[str, RestToMcpTool]) -> None:
    with pytest.raises(SpecError, match=r"^The value for header 'api_key' contains a line break or NUL character\.$"):
        render_request(petstore_tools["deletePet"], {"petId": 7, "api_key": "k\r\nX-Admin: 1"})


def test_json_body_from_body_arguments(petstore_tools: dict[str, RestToMcpTool]) -> None:
    request = render_request(
        petstore_tools["addPet"], {"name": "Rex", "photoUrls": ["https://img/1.png"], "tags": [{"id": 1}]}
    )
    assert request.method == "POST"
    assert request.headers == [("Content-Type", "application/json; charset=utf-8")]
    assert request.body is not None
    assert json.loads(request.body) == {"name": "Rex", "photoUrls": ["https://img/1.png"], "tags": [{"id": 1}]}


def test_form_body_when_the_operation_takes_a_form(petstore_tools: dict[str, RestToMcpTool]) -> None:
    request = render_request(petstore_tools["updatePetWithForm"], {"petId": 3, "name": "Rex & co", "status": "sold"})
    assert request.headers == [("Content-Type", "application/x-www-form-urlencoded")]
    assert request.body == b"name=Rex%20%26%20co&status=sold"


def test_opaque_json_and_text_bodies(weather_tools: dict[str, RestToMcpTool]) -> None:
    alerts = render_request(weather_tools["post_alerts"], {"body": ["Paris", 'Quote"City']})
    assert alerts.body == b'["Paris","Quote\\"City"]'
    assert alerts.headers == [("Content-Type", "application/json")]
    note = render_request(weather_tools["putNote"], {"body": "hello {{.config.x}}"})
    assert note.body == b"hello {{.config.x}}"
    assert note.headers == [("Content-Type", "text/plain")]
    assert render_request(weather_tools["putNote"], {}).body == b""


def test_json_body_template_escapes_values_inside_strings() -> None:
    definition = _definition(
        request={
            "method": "POST",
            "body_template": (
                '{"order": "{{.args.orderId}}", "expand": {{.args.expand}}, "note": "id={{.args.orderId}}"}'
            ),
        }
    )
    tool = validate_definition(definition).tools[0]
    request = render_request(tool, {"orderId": 'x", "admin": true, "y": "', "expand": False}, config={"token": "t"})
    assert request.body is not None
    assert json.loads(request.body) == {
        "order": 'x", "admin": true, "y": "',
        "expand": False,
        "note": 'id=x", "admin": true, "y": "',
    }
    assert ("Content-Type", "application/json; charset=utf-8") in request.headers
    missing = render_request(tool, {"orderId": "o1"}, config={"token": "t"})
    assert json.loads(missing.body or b"") == {"order": "o1", "expand": None, "note": "id=o1"}


def test_args_to_url_param_and_json_body_flags() -> None:
    definition = _definition()
    definition["tools"][0]["request"]["args"][1]["position"] = None
    definition["tools"][0]["request"]["args_to_url_param"] = True
    tool = validate_definition(definition).tools[0]
    assert render_request(tool, {"orderId": "1", "expand": "true"}, config={"token": "t"}).path_with_query == (
        "/orders/1?expand=true"
    )
    definition["tools"][0]["request"].update(args_to_url_param=False, args_to_json_body=True, method="POST")
    tool = validate_definition(definition).tools[0]
    request = render_request(tool, {"orderId": "1", "expand": True}, config={"token": "t"})
    assert request.body == b'{"expand":true}'


def test_config_must_be_supplied_when_templates_read_it() -> None:
    tool = validate_definition(_definition()).tools[0]
    with pytest.raises(SpecError, match=r"^get_order: \{\{.config.token\}\} is not set in the server's config\.$"):
        render_request(tool, {"orderId": "1"})


def test_join_url() -> None:
    assert join_url("https://api.example.com/v1/", "/pets?x=1") == "https://api.example.com/v1/pets?x=1"
    assert join_url("https://api.example.com/v1", "/pets") == "https://api.example.com/v1/pets"


# --- render_response -----------------------------------------------------------------------------


def test_response_template_reads_json_fields() -> None:
    tool = validate_definition(
        _definition(response_template="Order {{ .id }} ({{.status}}): {{.lines.0.sku}} x{{.lines.0.qty}}{{.missing}}")
    ).tools[0]
    body = json.dumps({"id": "o1", "status": "paid", "lines": [{"sku": "A-1", "qty": 2}]})
    assert render_response(tool, 200, body) == "Order o1 (paid): A-1 x2"


def test_response_template_whole_value_and_non_json_bodies() -> None:
    tool = validate_definition(_definition(response_template="Result: {{.}} / {{.x}}")).tools[0]
    assert render_response(tool, 200, '{"x": [1, true, null]}') == 'Result: {"x":[1,true,null]} / [1,true,null]'
    assert render_response(tool, 200, "plain text") == "Result: plain text / "


def test_prepend_and_append_wrap_the_raw_body() -> None:
    tool = validate_definition(_definition(response_prepend="<<", response_append=">>")).tools[0]
    assert render_response(tool, 201, "body") == "<<body>>"


def test_error_statuses_are_reported_untemplated() -> None:
    tool = validate_definition(_definition(response_template="{{.id}}")).tools[0]
    assert render_response(tool, 404, '{"error": "no such order"}') == 'HTTP 404\n{"error": "no such order"}'
    assert render_response(tool, 503, "") == "HTTP 503"


def test_without_template_the_body_is_returned_as_is(petstore_tools: dict[str, RestToMcpTool]) -> None:
    assert render_response(petstore_tools["getPetById"], 200, '{"id": 1}') == '{"id": 1}'
