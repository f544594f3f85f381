"""`tools_from_openapi`: one REST-to-MCP tool per OpenAPI operation."""

from __future__ import annotations

import copy
import re
from typing import Any

from marketplace.specs.openapi import OpenApiSpec, Operation
from marketplace.specs.rest_to_mcp.model import ArgMapping, Header, Position, RequestTemplate, RestToMcpTool
from marketplace.specs.tool_names import unique_tool_names

__all__ = ["tools_from_openapi"]

# OpenAPI: header parameters with these names "SHALL be ignored" (the request body and the
# security schemes decide them).
_IGNORED_HEADERS = frozenset({"accept", "content-type", "authorization"})
_LOCATIONS: dict[str, Position] = {"path": "path", "query": "query", "header": "header", "cookie": "cookie"}
_FORM = "application/x-www-form-urlencoded"


def tools_from_openapi(spec: OpenApiSpec) -> list[RestToMcpTool]:
    """One tool per operation, in document order, ready for `validate_definition`.

    - Tool names come from ``operationId`` (else ``<method>_<path>``), sanitized and made unique
      (`unique_tool_names`); the description is the summary and description.
    - Each parameter becomes an argument at its location. Argument names are sanitized too;
      the original name is kept as ``wire_name`` and ``{param}`` path templates are renamed.
    - A JSON or form body whose schema is an object with properties contributes one argument
      per property (position ``body``); any other body is one ``body`` argument inserted by a
      body template, sent with the operation's content type.
    - Operations with multipart bodies are skipped: an MCP tool cannot upload files.
    """
    operations = [op for op in spec.operations if not _is_multipart(op)]
    names = unique_tool_names(op.operation_id or f"{op.method.lower()}_{op.path}" for op in operations)
    return [_tool(name, op) for name, op in zip(names, operations, strict=True)]


def _is_multipart(op: Operation) -> bool:
    return (op.request_body_content_type or "").lower().startswith("multipart/")


def _description(op: Operation) -> str:
    parts = [part.strip() for part in (op.summary, op.description) if part and part.strip()]
    if parts and len(parts) == 2 and parts[1].startswith(parts[0]):
        parts = parts[1:]
    text = "\n\n".join(parts) or f"{op.method} {op.path}"
    return f"(Deprecated) {text}" if op.deprecated else text


def _tool(name: str, op: Operation) -> RestToMcpTool:
    params = [
        p for p in op.parameters if not (p.location == "header" and p.name.lower() in _IGNORED_HEADERS) and p.name
    ]
    body_properties, body_required = _body_properties(op)
    opaque_body = op.request_body_schema is not None and body_properties is None
    raw_names = [p.name for p in params] + list(body_properties or {}) + (["body"] if opaque_body else [])
    arg_names = unique_tool_names(raw_names)

    properties: dict[str, Any] = {}
    required: list[str] = []
    args: list[ArgMapping] = []
    renames: dict[str, str] = {}
    for param, arg_name in zip(params, arg_names, strict=False):
        properties[arg_name] = _property(param.schema, param.description)
        wire_name = None if arg_name == param.name else param.name
        is_required = param.required or param.location == "path"
        args.append(ArgMapping(arg_name, _LOCATIONS.get(param.location), is_required, wire_name))
        if param.location == "path":
            renames[param.name] = arg_name
    rest = arg_names[len(params) :]
    if body_properties is not None:
        for (prop_name, schema), arg_name in zip(body_properties.items(), rest, strict=False):
            properties[arg_name] = _property(schema, "")
            is_required = op.request_body_required and prop_name in body_required
            args.append(ArgMapping(arg_name, "body", is_required, None if arg_name == prop_name else prop_name))
    headers: list[Header] = []
    body_template = None
    if opaque_body:
        body_name = rest[0]
        properties[body_name] = _property(op.request_body_schema or {}, "The request body.")
        args.append(ArgMapping(body_name, None, op.request_body_required))
        body_template = "{{.args.%s}}" % body_name  # noqa: UP031 - braces make f-strings unreadable here
    content_type = op.request_body_content_type
    if content_type and (opaque_body or _FORM in content_type.lower()):
        headers.append(Header("Content-Type", content_type))
    for arg in args:
        if arg.required:
            required.append(arg.name)

    path = re.sub(r"\{([^{}]+)\}", lambda m: "{%s}" % renames.get(m.group(1), m.group(1)), op.path)  # noqa: UP031
    input_schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        input_schema["required"] = required
    return RestToMcpTool(
        name=name,
        description=_description(op),
        input_schema=input_schema,
        request=RequestTemplate(method=op.method, path=path, args=args, headers=headers, body_template=body_template),
    )


def _body_properties(op: Operation) -> tuple[dict[str, Any] | None, set[str]]:
    """The body's top-level properties, when it is a JSON or form object that has some."""
    schema = op.request_body_schema
    content_type = (op.request_body_content_type or "").lower()
    is_json_or_form = "json" in content_type or _FORM in content_type
    if not isinstance(schema, dict) or not is_json_or_form:
        return None, set()
    properties = schema.get("properties")
    kind = schema.get("type", "object")
    if not isinstance(properties, dict) or not properties or kind != "object":
        return None, set()
    if any(key in schema for key in ("oneOf", "anyOf", "allOf", "not", "if")):
        return None, set()
    read_write = {k: v for k, v in properties.items() if not (isinstance(v, dict) and v.get("readOnly") is True)}
    return read_write or None, set(schema.get("required") or [])


def _property(schema: dict[str, Any], description: str) -> dict[str, Any]:
    prop = copy.deepcopy(schema) if isinstance(schema, dict) else {}
    if description and "description" not in prop:
        prop["description"] = description
    return prop
