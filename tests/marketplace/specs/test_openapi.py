from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from marketplace.specs.errors import SpecError
from marketplace.specs.openapi import OpenApiSpec, Operation, parse_openapi
from tests.marketplace.specs.conftest import fixture_text


def _op(spec: OpenApiSpec, operation_id: str) -> Operation:
    return next(op for op in spec.operations if op.operation_id == operation_id)


def _minimal(**extra: Any) -> dict[str, Any]:
    return {"openapi": "3.0.3", "info": {"title": "T", "version": "1"}, "paths": {}, **extra}


# --- valid documents ------------------------------------------------------------------------


def test_petstore_30_yaml_is_parsed(petstore_yaml: str) -> None:
    spec = parse_openapi(petstore_yaml)
    assert (spec.openapi_version, spec.title, spec.version) == ("3.0.3", "Swagger Petstore", "1.0.17")
    assert spec.description.startswith("A sample pet store server")
    assert spec.servers[0].url == "https://{region}.petstore.example.com/api/v3"
    assert spec.servers[0].default_url == "https://eu.petstore.example.com/api/v3"
    assert [(op.method, op.path) for op in spec.operations] == [
        ("POST", "/pet"),
        ("GET", "/pet/findByStatus"),
        ("GET", "/pet/{petId}"),
        ("POST", "/pet/{petId}"),
        ("DELETE", "/pet/{petId}"),
        ("POST", "/pet/{petId}/uploadImage"),
        ("GET", "/store/inventory"),
    ]


def test_refs_are_expanded_and_recursion_is_cut(petstore_yaml: str) -> None:
    add_pet = _op(parse_openapi(petstore_yaml), "addPet")
    assert add_pet.request_body_content_type == "application/json"
    assert add_pet.request_body_required is True
    body = add_pet.request_body_schema
    assert body is not None
    assert body["required"] == ["name", "photoUrls"]
    assert body["properties"]["tags"]["items"]["properties"]["name"] == {"type": "string"}
    category = body["properties"]["category"]
    assert category["properties"]["parent"] == {"$comment": "recursive reference to #/components/schemas/Category"}
    assert add_pet.response_schema == body


def test_30_nullable_and_boolean_exclusive_bounds_become_json_schema(petstore_yaml: str) -> None:
    spec = parse_openapi(petstore_yaml)
    status = _op(spec, "addPet").request_body_schema["properties"]["status"]  # type: ignore[index]
    assert status["type"] == ["string", "null"]
    assert status["enum"] == ["available", "pending", "sold", None]
    assert "nullable" not in status
    params = {p.name: p for p in _op(spec, "getInventory").parameters}
    assert params["filter[status]"].schema == {"type": ["string", "null"]}
    assert params["min.count"].schema == {"type": "integer", "exclusiveMinimum": 0}


def test_path_level_parameters_are_merged_and_refs_followed(petstore_yaml: str) -> None:
    spec = parse_openapi(petstore_yaml)
    delete = _op(spec, "deletePet")
    assert [(p.name, p.location, p.required) for p in delete.parameters] == [
        ("petId", "path", True),
        ("api_key", "header", False),
        ("session", "cookie", False),
    ]
    assert delete.deprecated is True
    find = _op(spec, "findPetsByStatus")
    limit = next(p for p in find.parameters if p.name == "limit")
    assert (limit.location, limit.description, limit.schema) == (
        "query",
        "How many pets to return.",
        {"type": "integer", "default": 20, "maximum": 100},
    )


def test_response_schema_prefers_the_lowest_2xx_then_default(petstore_yaml: str) -> None:
    find = _op(parse_openapi(petstore_yaml), "findPetsByStatus")
    assert find.response_schema is not None
    assert find.response_schema["type"] == "array"
    spec = parse_openapi(
        _minimal(
            paths={
                "/x": {
                    "get": {
                        "responses": {
                            "default": {
                                "description": "err",
                                "content": {"application/json": {"schema": {"type": "string"}}},
                            },
                            "204": {"description": "nothing"},
                        }
                    }
                }
            }
        )
    )
    assert spec.operations[0].response_schema == {"type": "string"}


def test_weather_31_json_is_parsed(weather_json: str) -> None:
    spec = parse_openapi(weather_json)
    assert (spec.openapi_version, spec.title, spec.version) == ("3.1.0", "Weather API", "2.4.0")
    current = _op(spec, "weather.current.get")
    assert [p.name for p in current.parameters] == ["city", "units", "lang"]
    assert current.parameters[2].schema == {"type": ["string", "null"]}
    assert current.response_schema is not None
    # A 3.1 $ref keeps its sibling description, which overrides the target's.
    assert current.response_schema["description"] == "Conditions right now"
    assert current.response_schema["properties"]["wind"]["properties"]["speed"] == {
        "type": "number",
        "exclusiveMinimum": 0,
    }
    alerts = next(op for op in spec.operations if op.path == "/alerts")
    assert alerts.operation_id is None
    assert alerts.request_body_schema == {"type": "array", "items": {"type": "string"}, "minItems": 1}
    notes = _op(spec, "putNote")
    assert notes.request_body_content_type == "text/plain"


def test_parsed_dict_input_is_accepted(weather_json: str) -> None:
    assert parse_openapi(json.loads(weather_json)).title == "Weather API"


def test_the_same_document_in_json_and_yaml_gives_the_same_result(petstore_yaml: str, weather_json: str) -> None:
    petstore_json = json.dumps(yaml.safe_load(petstore_yaml))
    assert parse_openapi(petstore_json).operations == parse_openapi(petstore_yaml).operations
    weather_yaml = yaml.safe_dump(json.loads(weather_json), sort_keys=False)
    assert parse_openapi(weather_yaml).operations == parse_openapi(weather_json).operations


def test_a_31_document_without_paths_is_valid() -> None:
    spec = parse_openapi({"openapi": "3.1.0", "info": {"title": "Hooks", "version": "1"}, "webhooks": {}})
    assert spec.operations == []


# --- refused documents ----------------------------------------------------------------------


def test_invalid_30_reports_every_problem_with_its_location() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("invalid-3.0.yaml"))
    error = excinfo.value
    assert error.message == (
        "The OpenAPI document is invalid: info: 'version' is a required property (and 5 more problems)."
    )
    assert error.field == "info"
    assert error.details == [
        "info: 'version' is a required property",
        "paths./orders.get.parameters[0].in: 'querystring' is not one of ['path', 'query', 'header', 'cookie']",
        "paths./orders.get.responses: {} should be non-empty",
        "components.schemas.Order.properties.total.type: 'decimal' is not one of "
        "['array', 'boolean', 'integer', 'number', 'object', 'string']",
        "(root): Operation ID 'listOrders' for 'post' in '/orders' is not unique",
        "(root): Path parameter 'orderId' for 'get' operation in '/orders/{orderId}' was not resolved",
    ]


def test_invalid_31_reports_every_problem_with_its_location() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("invalid-3.1.json"))
    assert excinfo.value.details == [
        "servers[0]: 'url' is a required property",
        "paths./search.get.parameters[0].required: 'yes' is not of type 'boolean'",
        "paths./search.get.responses.200: 'description' is a required property",
    ]
    assert excinfo.value.message == (
        "The OpenAPI document is invalid: servers[0]: 'url' is a required property (and 2 more problems)."
    )


def test_swagger_20_is_refused_with_advice() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("swagger-2.0.json"))
    assert excinfo.value.message == (
        "This is a Swagger 2.0 document; convert it to OpenAPI 3 first "
        "(for example with swagger2openapi, or by importing it into editor.swagger.io)."
    )
    assert excinfo.value.field == "swagger"


def test_external_references_are_refused_and_never_fetched() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("external-ref.yaml"))
    assert excinfo.value.details == [
        "paths./secrets.get.responses.200.content.application/json.schema.$ref: "
        "'http://169.254.169.254/latest/meta-data/' points outside this document; only local references "
        "('#/...') are supported, so bundle the document into one file first",
        "paths./users.get.responses.200.content.application/json.schema.$ref: 'schemas/users.yaml#/User' "
        "points outside this document; only local references ('#/...') are supported, so bundle the document "
        "into one file first",
    ]
    assert excinfo.value.message.startswith("The OpenAPI document refers to other documents: ")


def test_external_references_among_examples_are_refused_too() -> None:
    media = {"schema": {"type": "object"}, "examples": {"leak": {"$ref": "file:///etc/passwd"}}}
    doc = _minimal(
        paths={"/a": {"get": {"responses": {"200": {"description": "ok", "content": {"application/json": media}}}}}}
    )
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(doc)
    assert excinfo.value.field == "paths./a.get.responses.200.content.application/json.examples.leak.$ref"


def test_dangling_reference_is_reported_precisely() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("dangling-ref.json"))
    assert excinfo.value.message == (
        "The OpenAPI document has broken $ref references: "
        "paths./pets.get.responses.200.content.application/json.schema.$ref: "
        "'#/components/schemas/Pets' points at nothing (no 'Pets' there)."
    )


def test_yaml_alias_bomb_is_refused() -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(fixture_text("alias-bomb.yaml"))
    assert excinfo.value.message == (
        "The OpenAPI document's YAML aliases (*name) would expand it by more than 100,000 nodes: refusing it "
        "as a likely alias bomb. Write the repeated parts out, or use $ref."
    )


def test_oversize_document_is_refused(petstore_yaml: str) -> None:
    size = len(petstore_yaml.encode())
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(petstore_yaml, max_bytes=1000)
    assert excinfo.value.message == f"The OpenAPI document is {size:,} bytes; the limit is 1,000 bytes."


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("- a\n- b\n", "The OpenAPI document's root must be an object (a mapping of names to values), not a list."),
        ('{"info": {}}', "The document has no 'openapi' field, so it is not an OpenAPI 3 document."),
        (
            "openapi: 3.0\ninfo: {}\n",
            'openapi: the version must be a string such as "3.1.0", not 3.0 (quote it in YAML: openapi: "3.0.3").',
        ),
        ('{"openapi": "4.0.0"}', "openapi: version '4.0.0' is not supported; use OpenAPI 3.0.x or 3.1.x."),
    ],
)
def test_documents_that_are_not_openapi_3_are_refused(document: str, message: str) -> None:
    with pytest.raises(SpecError) as excinfo:
        parse_openapi(document)
    assert excinfo.value.message == message


def test_exponential_reference_fan_out_is_capped() -> None:
    # Each level refers to the previous one twice: 2**30 nodes once expanded.
    schemas: dict[str, Any] = {"L0": {"type": "string"}}
    for i in range(1, 31):
        schemas[f"L{i}"] = {
            "type": "object",
            "properties": {
                "a": {"$ref": f"#/components/schemas/L{i - 1}"},
                "b": {"$ref": f"#/components/schemas/L{i - 1}"},
            },
        }
    doc = _minimal(
        paths={
            "/boom": {
                "get": {
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/L30"}}},
                        }
                    }
                }
            }
        },
        components={"schemas": schemas},
    )
    with pytest.raises(SpecError, match=r"expanding the \$ref references produces more than 1,000,000 nodes"):
        parse_openapi(doc)
