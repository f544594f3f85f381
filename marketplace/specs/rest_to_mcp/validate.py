"""`validate_definition`: a stored (or imported) REST-to-MCP definition, checked and typed.

The input is the form `RestToMcpServer.to_dict` produces. Every problem found is reported
(``SpecError.details``), each prefixed with where it is: ``tools[2].request.args[0].position``.
Unknown keys are refused rather than ignored, so a typo never silently changes behaviour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]

from marketplace.specs.errors import SpecError, format_path
from marketplace.specs.rest_to_mcp.model import (
    HTTP_METHODS,
    POSITIONS,
    ArgMapping,
    Header,
    Position,
    RequestTemplate,
    RestToMcpServer,
    RestToMcpTool,
)
from marketplace.specs.templates import MISSING, Expr, lookup_path, parse_template
from marketplace.specs.tool_names import tool_name_problem

__all__ = ["HEADER_NAME", "check_object_schema", "path_placeholders", "validate_definition"]

HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class _Problems:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.lines.append(f"{where}: {message}")


def validate_definition(data: Mapping[str, Any]) -> RestToMcpServer:
    """Check a definition and build the server; SpecError listing every problem otherwise."""
    if not isinstance(data, Mapping):
        raise SpecError(f"A REST-to-MCP definition must be an object, not {type(data).__name__}.")
    p = _Problems()
    _known_keys(data, ("name", "base_url", "config", "tools"), "(root)", p)
    name = _string(data, "name", "(root)", p, required=True)
    base_url = _string(data, "base_url", "(root)", p, default="")
    if base_url:
        _check_base_url(base_url, p)
    config = data.get("config") or {}
    if not isinstance(config, dict):
        p.add("config", f"must be an object, not {type(config).__name__}")
        config = {}
    raw_tools = data.get("tools")
    tools: list[RestToMcpTool] = []
    if not isinstance(raw_tools, list) or not raw_tools:
        p.add("tools", "a REST-to-MCP server needs a list of at least one tool")
        raw_tools = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_tools):
        tool = _tool(raw, f"tools[{i}]", config, p)
        if tool is None:
            continue
        if tool.name in seen:
            p.add(f"tools[{i}].name", f"{tool.name!r} is already the name of tools[{seen[tool.name]}]")
        seen.setdefault(tool.name, i)
        tools.append(tool)
    if p.lines:
        first = p.lines[0]
        more = f" (and {len(p.lines) - 1} more)" if len(p.lines) > 1 else ""
        raise SpecError(
            f"The REST-to-MCP definition is invalid: {first}{more}.", field=first.split(": ", 1)[0], details=p.lines
        )
    return RestToMcpServer(name=name, base_url=base_url, tools=tools, config=config)


def check_object_schema(schema: Any) -> str | None:
    """What is wrong with ``schema`` as a tool's input or output schema, or None."""
    if not isinstance(schema, dict):
        return f"must be a JSON Schema object, not {type(schema).__name__}"
    if schema.get("type") != "object":
        return 'the schema\'s root must have "type": "object"'
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        at = format_path(list(exc.path)) if exc.path else "(root)"
        return f"not a valid JSON Schema: {exc.message} (at {at})"
    return None


def path_placeholders(segments: tuple[str | Expr, ...]) -> list[str]:
    """The ``{name}`` placeholders in the literal parts of a parsed path template."""
    return [m.group(1) for s in segments if isinstance(s, str) for m in _PLACEHOLDER.finditer(s)]


def _known_keys(raw: Mapping[str, Any], known: tuple[str, ...], where: str, p: _Problems) -> None:
    for key in raw:
        if key not in known:
            p.add(where, f"unknown field {key!r} (expected: {', '.join(known)})")


def _string(
    raw: Mapping[str, Any], key: str, where: str, p: _Problems, *, required: bool = False, default: str = ""
) -> str:
    value = raw.get(key)
    at = key if where == "(root)" else f"{where}.{key}"
    if value is None:
        if required:
            p.add(at, "is required")
        return default
    if not isinstance(value, str):
        p.add(at, f"must be a string, not {type(value).__name__}")
        return default
    if required and not value.strip():
        p.add(at, "must not be empty")
    return value


def _check_base_url(url: str, p: _Problems) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        p.add("base_url", f"{url!r} is not an absolute http(s) URL")
    elif parts.username or parts.password:
        p.add("base_url", "must not carry credentials; put them in config and reference them in a header")
    elif parts.query or parts.fragment:
        p.add("base_url", "must not have a query or fragment; put fixed parameters in each tool's path")


def _tool(raw: Any, where: str, config: dict[str, Any], p: _Problems) -> RestToMcpTool | None:
    if not isinstance(raw, dict):
        p.add(where, f"must be an object, not {type(raw).__name__}")
        return None
    keys = ("name", "description", "input_schema", "output_schema", "request")
    _known_keys(raw, (*keys, "response_template", "response_prepend", "response_append"), where, p)
    name = _string(raw, "name", where, p, required=True)
    if name and (problem := tool_name_problem(name)) is not None:
        p.add(f"{where}.name", problem)
    description = _string(raw, "description", where, p)
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    if (problem := check_object_schema(raw.get("input_schema"))) is not None:
        p.add(f"{where}.input_schema", problem)
    else:
        schema = raw["input_schema"]
    output_schema = raw.get("output_schema")
    if output_schema is not None and (problem := check_object_schema(output_schema)) is not None:
        p.add(f"{where}.output_schema", problem)
    request = _request(raw.get("request"), f"{where}.request", schema, config, p)
    response_template = raw.get("response_template")
    if response_template is not None:
        if not isinstance(response_template, str):
            p.add(f"{where}.response_template", "must be a string")
            response_template = None
        else:
            _parse(response_template, f"{where}.response_template", p)
    prepend = _string(raw, "response_prepend", where, p)
    append = _string(raw, "response_append", where, p)
    if response_template is not None and (prepend or append):
        p.add(where, "response_prepend and response_append cannot be combined with response_template")
    if request is None:
        return None
    return RestToMcpTool(
        name=name,
        description=description,
        input_schema=schema,
        request=request,
        response_template=response_template,
        response_prepend=prepend,
        response_append=append,
        output_schema=output_schema,
    )


def _parse(text: str, where: str, p: _Problems) -> tuple[str | Expr, ...]:
    try:
        return parse_template(text, where=where)
    except SpecError as exc:
        p.add(where, exc.message.removeprefix(f"{where}: ").rstrip("."))
        return ()


def _request(
    raw: Any, where: str, schema: dict[str, Any], config: dict[str, Any], p: _Problems
) -> RequestTemplate | None:
    if not isinstance(raw, dict):
        p.add(where, "is required: an object with method, path and args")
        return None
    flags = ("args_to_json_body", "args_to_url_param", "args_to_form_body")
    _known_keys(raw, ("method", "path", "args", "headers", "body_template", *flags), where, p)
    method = _string(raw, "method", where, p, required=True).upper()
    if method and method not in HTTP_METHODS:
        p.add(f"{where}.method", f"{method!r} is not one of {', '.join(HTTP_METHODS)}")
    path = _string(raw, "path", where, p)
    if path and not path.startswith("/"):
        p.add(f"{where}.path", f"{path!r} must start with '/' (it is appended to the server's base_url)")
    if "#" in path or _CONTROL.search(path) or " " in path:
        p.add(f"{where}.path", "must not contain '#', spaces or control characters")
    args = _args(raw.get("args"), f"{where}.args", p)
    headers = _headers(raw.get("headers"), f"{where}.headers", p)
    body_template = raw.get("body_template")
    if body_template is not None and not isinstance(body_template, str):
        p.add(f"{where}.body_template", "must be a string")
        body_template = None
    values = {flag: raw.get(flag, False) for flag in flags}
    for flag, value in values.items():
        if not isinstance(value, bool):
            p.add(f"{where}.{flag}", "must be true or false")
            values[flag] = False
    if sum(values.values()) > 1:
        p.add(where, "only one of args_to_json_body, args_to_url_param and args_to_form_body can be set")
    if body_template is not None and (values["args_to_json_body"] or values["args_to_form_body"]):
        p.add(where, "body_template cannot be combined with args_to_json_body or args_to_form_body")

    by_name = {a.name: a for a in args}
    used: set[str] = set()
    path_segments = _parse(path, f"{where}.path", p)
    templates = [(f"{where}.path", path_segments)]
    templates += [
        (f"{where}.headers[{i}].value", _parse(h.value, f"{where}.headers[{i}].value", p))
        for i, h in enumerate(headers)
    ]
    if body_template is not None:
        templates.append((f"{where}.body_template", _parse(body_template, f"{where}.body_template", p)))
    for at, segments in templates:
        for expr in (s for s in segments if isinstance(s, Expr)):
            _check_reference(expr, at, by_name, config, used, p)
    placeholders = path_placeholders(path_segments)
    for placeholder in placeholders:
        arg = by_name.get(placeholder)
        if arg is None or arg.position != "path":
            p.add(f"{where}.path", f"placeholder {{{placeholder}}} has no argument with position 'path'")
    for i, arg in enumerate(args):
        at = f"{where}.args[{i}]"
        if arg.position == "path" and arg.name not in placeholders:
            p.add(at, f"path argument {arg.name!r} has no {{{arg.name}}} placeholder in the path")
        sent = (
            arg.position in ("path", "query", "header", "cookie")
            or (arg.position == "body" and body_template is None)
            or (arg.position is None and any(values.values()))
            or arg.name in used
        )
        if not sent:
            p.add(
                at,
                f"argument {arg.name!r} is never sent: give it a position, or use it as {{{{.args.{arg.name}}}}} "
                "in a template" + ("" if arg.position else ", or set one of the args_to_* flags"),
            )
    _check_schema_matches(schema, args, where, p)
    return RequestTemplate(
        method=method,
        path=path,
        args=args,
        headers=headers,
        body_template=body_template,
        args_to_json_body=values["args_to_json_body"],
        args_to_url_param=values["args_to_url_param"],
        args_to_form_body=values["args_to_form_body"],
    )


def _check_reference(
    expr: Expr, where: str, args: dict[str, ArgMapping], config: dict[str, Any], used: set[str], p: _Problems
) -> None:
    root = expr.path[0] if expr.path else ""
    if root == "args" and len(expr.path) == 2:
        if expr.path[1] in args:
            used.add(expr.path[1])
        else:
            p.add(where, f"{expr.source} refers to an argument that does not exist")
    elif root == "config" and len(expr.path) >= 2:
        if lookup_path(config, expr.path[1:]) is MISSING:
            p.add(where, f"{expr.source} refers to a config value that is not set")
    else:
        p.add(where, f"{expr.source}: request templates can only use {{{{.args.NAME}}}} and {{{{.config.KEY}}}}")


def _args(raw: Any, where: str, p: _Problems) -> list[ArgMapping]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add(where, "must be a list")
        return []
    args: list[ArgMapping] = []
    names: set[str] = set()
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            p.add(at, "must be an object with name and position")
            continue
        _known_keys(item, ("name", "position", "required", "wire_name"), at, p)
        name = item.get("name")
        problem = tool_name_problem(name, subject="argument name")
        if problem is not None or not isinstance(name, str):
            p.add(f"{at}.name", problem or "must be a string")
            continue
        if name in names:
            p.add(f"{at}.name", f"argument {name!r} is defined twice")
        names.add(name)
        position = item.get("position")
        if position is not None and position not in POSITIONS:
            p.add(f"{at}.position", f"{position!r} is not one of {', '.join(POSITIONS)} (or null)")
            position = None
        required = item.get("required", False)
        if not isinstance(required, bool):
            p.add(f"{at}.required", "must be true or false")
            required = False
        wire_name = item.get("wire_name")
        if wire_name is not None and (not isinstance(wire_name, str) or not wire_name or _CONTROL.search(wire_name)):
            p.add(f"{at}.wire_name", "must be a non-empty string without control characters")
            wire_name = None
        sent_as = wire_name or name
        if position in ("header", "cookie") and not HEADER_NAME.fullmatch(sent_as):
            p.add(at, f"{sent_as!r} cannot be used as a {position} name")
        args.append(ArgMapping(name=name, position=_position(position), required=required, wire_name=wire_name))
    return args


def _position(value: Any) -> Position | None:
    for position in POSITIONS:
        if value == position:
            return position
    return None


def _headers(raw: Any, where: str, p: _Problems) -> list[Header]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        p.add(where, "must be a list of {key, value} objects")
        return []
    headers: list[Header] = []
    for i, item in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            p.add(at, "must be an object with key and value")
            continue
        _known_keys(item, ("key", "value"), at, p)
        key, value = item.get("key"), item.get("value", "")
        if not isinstance(key, str) or not HEADER_NAME.fullmatch(key):
            p.add(f"{at}.key", f"{key!r} is not a valid header name")
            continue
        if not isinstance(value, str) or "\r" in value or "\n" in value or "\x00" in value:
            p.add(f"{at}.value", "must be a string on one line")
            continue
        headers.append(Header(key=key, value=value))
    return headers


def _check_schema_matches(schema: dict[str, Any], args: list[ArgMapping], where: str, p: _Problems) -> None:
    tool = where.rsplit(".request", 1)[0]
    properties = schema.get("properties") or {}
    names = {a.name for a in args}
    for name in properties:
        if name not in names:
            p.add(f"{tool}.input_schema.properties", f"{name!r} has no entry in request.args")
    for arg in args:
        if arg.name not in properties:
            p.add(f"{tool}.input_schema.properties", f"argument {arg.name!r} is missing from the schema")
    required = set(schema.get("required") or [])
    for arg in args:
        if arg.required != (arg.name in required):
            state = "required" if arg.required else "optional"
            p.add(
                f"{where}.args",
                f"argument {arg.name!r} is {state} here but {'not ' if arg.name not in required else ''}"
                "listed in input_schema.required",
            )
