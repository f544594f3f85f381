"""The OpenAPI 3.1 document demo-echo serves at ``/openapi.json``, so a provider can import the
demo REST API from the server itself. Operation ids are stable: they become tool names when the
API is turned into MCP tools."""

from __future__ import annotations

from typing import Any

MAX_DELAY_SECONDS = 30.0
MAX_STREAM_LINES = 10_000
MAX_STREAM_INTERVAL_SECONDS = 10.0
MAX_BYTES = 10 * 1024 * 1024

JSONObject = dict[str, Any]

_ECHO = {"$ref": "#/components/responses/Echo"}
_BAD_REQUEST = {"$ref": "#/components/responses/BadRequest"}
_JSON_BODY: JSONObject = {
    "required": False,
    "description": "Any body: JSON, a form, or raw bytes. It is echoed back.",
    "content": {
        "application/json": {"schema": {}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object", "additionalProperties": True}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
    },
}


def _operation(operation_id: str, summary: str, *, body: bool = False, **extra: Any) -> JSONObject:
    operation: JSONObject = {
        "operationId": operation_id,
        "summary": summary,
        "tags": ["echo"],
        "responses": {"200": _ECHO},
    }
    if body:
        operation["requestBody"] = _JSON_BODY
    operation.update(extra)
    return operation


def _path_parameter(name: str, description: str, schema: JSONObject) -> JSONObject:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": schema}


def _paths() -> JSONObject:
    code = _path_parameter("code", "The status to answer with.", {"type": "integer", "minimum": 200, "maximum": 599})
    seconds = _path_parameter(
        "seconds", "How long to wait, in seconds.", {"type": "number", "minimum": 0, "maximum": MAX_DELAY_SECONDS}
    )
    anything_path = _path_parameter("path", "Any path; it is echoed back.", {"type": "string"})
    status_responses = {
        "default": {"description": "The requested status, with a small JSON body (none for 204 and 304)."},
        "400": _BAD_REQUEST,
    }
    paths: JSONObject = {
        "/get": {"get": _operation("echoGet", "Echo a GET request")},
        "/post": {"post": _operation("echoPost", "Echo a POST request", body=True)},
        "/put": {"put": _operation("echoPut", "Echo a PUT request", body=True)},
        "/patch": {"patch": _operation("echoPatch", "Echo a PATCH request", body=True)},
        "/delete": {"delete": _operation("echoDelete", "Echo a DELETE request")},
        "/anything": {
            "get": _operation("anythingGet", "Echo any GET request"),
            "post": _operation("anythingPost", "Echo any POST request", body=True),
        },
        "/anything/{path}": {
            "parameters": [anything_path],
            "get": _operation("anythingPathGet", "Echo any GET request under /anything"),
            "post": _operation("anythingPathPost", "Echo any POST request under /anything", body=True),
            "put": _operation("anythingPathPut", "Echo any PUT request under /anything", body=True),
            "patch": _operation("anythingPathPatch", "Echo any PATCH request under /anything", body=True),
            "delete": _operation("anythingPathDelete", "Echo any DELETE request under /anything"),
        },
        "/status/{code}": {
            "parameters": [code],
            "get": _operation("statusGet", "Answer with the given status", responses=status_responses),
            "post": _operation("statusPost", "Answer a POST with the given status", responses=status_responses),
        },
        "/delay/{seconds}": {
            "parameters": [seconds],
            "get": _operation(
                "delayGet",
                "Wait, then echo the request",
                responses={"200": _ECHO, "400": _BAD_REQUEST},
            ),
        },
        "/stream/{n}": {"get": _stream_operation()},
        "/bytes/{n}": {"get": _bytes_operation()},
        "/headers": {
            "get": _operation(
                "headersGet",
                "Echo the request headers",
                responses={"200": _json_response("The request headers.", {"$ref": "#/components/schemas/Headers"})},
            )
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "Liveness probe",
                tags=["operations"],
                responses={"200": _json_response("The server is up.", {"$ref": "#/components/schemas/Health"})},
            )
        },
    }
    return paths


def _json_response(description: str, schema: JSONObject) -> JSONObject:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _stream_operation() -> JSONObject:
    return _operation(
        "streamLines",
        "Stream n JSON lines, chunked",
        parameters=[
            _path_parameter(
                "n", "How many lines to send.", {"type": "integer", "minimum": 0, "maximum": MAX_STREAM_LINES}
            ),
            {
                "name": "interval",
                "in": "query",
                "required": False,
                "description": "Seconds to wait between lines.",
                "schema": {"type": "number", "minimum": 0, "maximum": MAX_STREAM_INTERVAL_SECONDS, "default": 0},
            },
        ],
        responses={
            "200": {
                "description": "One JSON object per line: its index (`id`) and the request's url, args, "
                "headers and origin.",
                "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
            },
            "400": _BAD_REQUEST,
        },
    )


def _bytes_operation() -> JSONObject:
    return _operation(
        "randomBytes",
        "Return n random bytes",
        parameters=[
            _path_parameter("n", "How many bytes.", {"type": "integer", "minimum": 0, "maximum": MAX_BYTES}),
            {
                "name": "seed",
                "in": "query",
                "required": False,
                "description": "Seed for reproducible bytes.",
                "schema": {"type": "integer"},
            },
        ],
        responses={
            "200": {
                "description": "The bytes.",
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            },
            "400": _BAD_REQUEST,
        },
    )


def _components() -> JSONObject:
    string_or_list = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
    return {
        "schemas": {
            "Echo": {
                "type": "object",
                "required": ["method", "url", "path", "args", "headers", "origin", "data", "json", "form", "files"],
                "properties": {
                    "method": {"type": "string"},
                    "url": {"type": "string"},
                    "path": {"type": "string"},
                    "args": {"type": "object", "additionalProperties": string_or_list},
                    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
                    "origin": {"type": ["string", "null"], "description": "The client's address."},
                    "data": {"type": "string", "description": "The raw body; a base64 data URL when not UTF-8."},
                    "json": {"description": "The body parsed as JSON, or null."},
                    "form": {"type": "object", "additionalProperties": string_or_list},
                    "files": {"type": "object", "additionalProperties": {"type": "string"}},
                    "delay": {"type": "number", "description": "Only on /delay: the seconds waited."},
                },
            },
            "Headers": {
                "type": "object",
                "required": ["headers"],
                "properties": {"headers": {"type": "object", "additionalProperties": {"type": "string"}}},
            },
            "Health": {
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"const": "ok"}, "product": {"type": "string"}},
            },
            "Problem": {
                "type": "object",
                "description": "RFC 9457 problem details.",
                "required": ["type", "title", "status"],
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                },
            },
        },
        "responses": {
            "Echo": _json_response("The request, echoed.", {"$ref": "#/components/schemas/Echo"}),
            "BadRequest": {
                "description": "A path or query parameter is out of range.",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            },
        },
    }


def echo_openapi_document(server_url: str) -> JSONObject:
    """The OpenAPI 3.1 document, with ``server_url`` (scheme and authority) as its one server."""
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "demo-echo",
            "version": "1.0.0",
            "summary": "An httpbin-like echo API for demos and tests.",
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "servers": [{"url": server_url}],
        "tags": [
            {"name": "echo", "description": "Requests echoed back as JSON."},
            {"name": "operations", "description": "Probes."},
        ],
        "paths": _paths(),
        "components": _components(),
    }
