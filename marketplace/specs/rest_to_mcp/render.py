"""Turning a tool call into an HTTP request, and the HTTP response into the tool's text.

Both functions are pure: the gateway worker calls them and does the I/O itself.

Rendering follows the Higress plugin's semantics (see `model`), made safe:
- arguments are checked against the tool's input schema first (unknown names, missing
  required ones, wrong types), after applying schema defaults and coercing numeric and boolean
  strings (``"5"`` for an integer), as Higress does; ``null`` means "absent" for an optional
  argument;
- every value placed in the URL is percent-encoded, and a path argument may not be empty,
  ``.`` or ``..``, so an argument can never change which resource the path names;
- header values may not contain line breaks (no header injection);
- in a JSON body template, a value inside a string literal is inserted JSON-escaped and a value
  outside one is inserted as JSON, so an argument can never break out of its place. A body
  template whose Content-Type header is not JSON is filled with the values' plain text.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from typing import Any, NamedTuple
from urllib.parse import quote, urlencode

from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from marketplace.specs.errors import SpecError, format_path
from marketplace.specs.rest_to_mcp.model import ArgMapping, RestToMcpTool
from marketplace.specs.templates import (
    MISSING,
    Expr,
    lookup_path,
    parse_template,
    render_template,
    string_contexts,
    to_text,
)

__all__ = ["RenderedRequest", "join_url", "render_request", "render_response"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_JSON_TYPE = "application/json; charset=utf-8"
_FORM_TYPE = "application/x-www-form-urlencoded"
_WHERE = {
    "path": "path parameter",
    "query": "query parameter",
    "header": "header",
    "cookie": "cookie",
    "body": "body member",
}


class RenderedRequest(NamedTuple):
    """The request to send: ``path_with_query`` is relative to the server's ``base_url``."""

    method: str
    path_with_query: str
    headers: list[tuple[str, str]]
    body: bytes | None


def join_url(base_url: str, path_with_query: str) -> str:
    """``base_url`` + ``path_with_query``, with exactly one slash between them."""
    if base_url.endswith("/") and path_with_query.startswith("/"):
        return base_url + path_with_query[1:]
    return base_url + path_with_query


def render_request(
    tool: RestToMcpTool, arguments: Mapping[str, Any] | None, *, config: Mapping[str, Any] | None = None
) -> RenderedRequest:
    """The HTTP request for one call of ``tool``; SpecError (user-facing) for bad arguments."""
    request = tool.request
    args = _checked_arguments(tool, arguments or {})
    data: dict[str, Any] = {"args": args, "config": dict(config or {})}

    path = _render_path(tool, args, data)
    query: list[tuple[str, str]] = []
    for arg in request.args:
        if arg.name in args and (arg.position == "query" or (arg.position is None and request.args_to_url_param)):
            query.extend(_pairs(arg.sent_as, args[arg.name]))
    if query:
        separator = "" if path.endswith(("?", "&")) else ("&" if "?" in path else "?")
        path += separator + urlencode(query, quote_via=quote, safe="")

    headers: list[tuple[str, str]] = []
    for header in request.headers:
        segments = parse_template(header.value, where=f"header {header.key}")
        value = render_template(segments, lambda expr, _i: to_text(_lookup(data, expr, tool.name)))
        headers.append((header.key, _header_safe(header.key, value)))
    cookies: list[str] = []
    for arg in request.args:
        if arg.name not in args:
            continue
        if arg.position == "header":
            headers.append((arg.sent_as, _header_safe(arg.sent_as, to_text(args[arg.name]))))
        elif arg.position == "cookie":
            cookies.append(f"{arg.sent_as}={quote(to_text(args[arg.name]), safe='')}")
    if cookies:
        _merge_cookies(headers, cookies)

    body = _body(tool, args, data, headers)
    return RenderedRequest(method=request.method, path_with_query=path, headers=headers, body=body)


def render_response(tool: RestToMcpTool, status: int, body_text: str) -> str:
    """The tool's text for an HTTP response.

    - A non-2xx status gives ``"HTTP <status>"`` and the body on the next line, untemplated
      (the template describes a successful body); the worker marks the result as an error.
    - With ``response_template``, the body is parsed as JSON and the template filled from it
      (`marketplace.specs.templates`); a body that is not JSON is available as ``{{.}}`` only.
    - Otherwise the raw body, between ``response_prepend`` and ``response_append``.
    """
    if not 200 <= status < 300:
        return f"HTTP {status}\n{body_text}" if body_text else f"HTTP {status}"
    if tool.response_template is None:
        return f"{tool.response_prepend}{body_text}{tool.response_append}"
    try:
        data: Any = json.loads(body_text)
    except (ValueError, RecursionError):
        data = body_text
    segments = parse_template(tool.response_template, where="response_template")
    return render_template(segments, lambda expr, _i: to_text(lookup_path(data, expr.path)))


def _checked_arguments(tool: RestToMcpTool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(arguments, Mapping):
        raise SpecError(f"The arguments of {tool.name} must be an object, not {type(arguments).__name__}.")
    properties: dict[str, Any] = tool.input_schema.get("properties") or {}
    unknown = sorted(str(k) for k in arguments if k not in properties)
    if unknown:
        raise SpecError(
            f"{tool.name} has no argument{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}; "
            f"it takes: {', '.join(properties) or 'no arguments'}.",
            field=f"arguments.{unknown[0]}",
        )
    by_name = {a.name: a for a in tool.request.args}
    args = {k: v for k, v in arguments.items() if not (v is None and not _is_required(by_name.get(k)))}
    for name, prop in properties.items():
        if name not in args and isinstance(prop, dict) and "default" in prop:
            args[name] = copy.deepcopy(prop["default"])
    missing = [a for a in tool.request.args if a.required and a.name not in args]
    if missing:
        listed = ", ".join(f"{a.name!r} ({_WHERE.get(a.position or '', 'template value')})" for a in missing)
        raise SpecError(
            f"{tool.name} is missing required argument{'s' if len(missing) > 1 else ''} {listed}.",
            field=f"arguments.{missing[0].name}",
        )
    for name, value in list(args.items()):
        args[name] = _coerce(value, properties.get(name))
    errors = sorted(Draft202012Validator(tool.input_schema).iter_errors(args), key=lambda e: list(map(str, e.path)))
    if errors:
        details = [f"{format_path(['arguments', *e.path])}: {e.message}" for e in errors]
        raise SpecError(
            f"Invalid arguments for {tool.name}: {details[0]}.", field=details[0].split(": ", 1)[0], details=details
        )
    return args


def _is_required(arg: ArgMapping | None) -> bool:
    return arg is not None and arg.required


def _coerce(value: Any, schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if not isinstance(value, str) or not isinstance(kind, str):
        return value
    text = value.strip()
    if kind == "integer" and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if kind == "number" and re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        number = float(text)
        return int(number) if number.is_integer() and re.fullmatch(r"[+-]?\d+", text) else number
    if kind == "boolean" and text in ("true", "false"):
        return text == "true"
    return value


def _lookup(data: dict[str, Any], expr: Expr, tool: str) -> Any:
    value = lookup_path(data, expr.path)
    if value is MISSING and expr.path and expr.path[0] == "config":
        raise SpecError(f"{tool}: {expr.source} is not set in the server's config.")
    return value


def _render_path(tool: RestToMcpTool, args: dict[str, Any], data: dict[str, Any]) -> str:
    """The path with ``{name}`` placeholders and template actions filled, all percent-encoded."""
    path_args = {a.name for a in tool.request.args if a.position == "path"}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in path_args:
            return match.group(0)
        if name not in args:
            raise SpecError(f"{tool.name} is missing the path argument {name!r}.", field=f"arguments.{name}")
        text = to_text(args[name])
        if text in ("", ".", ".."):
            raise SpecError(
                f"The path argument {name!r} cannot be {text!r}: it would change which resource the URL names.",
                field=f"arguments.{name}",
            )
        return quote(text, safe="")

    out: list[str] = []
    in_query = False
    for segment in parse_template(tool.request.path, where="request.path"):
        if isinstance(segment, Expr):
            text = to_text(_lookup(data, segment, tool.name))
            if not in_query and text in (".", ".."):
                raise SpecError(
                    f"{segment.source} cannot be {text!r} in the URL path: it would change which resource it names.",
                    field=f"arguments.{segment.path[-1]}" if segment.path[:1] == ("args",) else None,
                )
            out.append(quote(text, safe=""))
        else:
            out.append(_PLACEHOLDER.sub(fill, segment))
            in_query = in_query or "?" in segment
    return "".join(out)


def _pairs(name: str, value: Any) -> list[tuple[str, str]]:
    """Query or form pairs: a list repeats the name (OpenAPI's default "form, explode")."""
    if isinstance(value, list):
        return [(name, to_text(item)) for item in value]
    return [(name, to_text(value))]


def _header_safe(name: str, value: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise SpecError(f"The value for header {name!r} contains a line break or NUL character.")
    return value


def _merge_cookies(headers: list[tuple[str, str]], cookies: list[str]) -> None:
    for i, (key, value) in enumerate(headers):
        if key.lower() == "cookie":
            headers[i] = (key, "; ".join([value, *cookies]) if value else "; ".join(cookies))
            return
    headers.append(("Cookie", "; ".join(cookies)))


def _header(headers: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in headers if k.lower() == name), None)


def _body(
    tool: RestToMcpTool, args: dict[str, Any], data: dict[str, Any], headers: list[tuple[str, str]]
) -> bytes | None:
    request = tool.request
    content_type = _header(headers, "content-type")
    if request.body_template is not None:
        segments = parse_template(request.body_template, where="request.body_template")
        if content_type is not None and "json" not in content_type.lower():
            text = render_template(segments, lambda expr, _i: to_text(_lookup(data, expr, tool.name)))
            return text.encode("utf-8")
        inside = string_contexts(segments)

        def json_value(expr: Expr, index: int) -> str:
            value = _lookup(data, expr, tool.name)
            if inside[index]:
                return json.dumps(to_text(value), ensure_ascii=False)[1:-1]
            return json.dumps(None if value is MISSING else value, ensure_ascii=False, separators=(",", ":"))

        text = render_template(segments, json_value)
        if content_type is None and text.strip()[:1] in ("{", "["):
            headers.append(("Content-Type", _JSON_TYPE))
        return text.encode("utf-8")

    bulk = request.args_to_json_body or request.args_to_form_body
    members = [a for a in request.args if a.name in args and (a.position == "body" or (bulk and a.position is None))]
    if not bulk and not members:
        return None
    as_form = request.args_to_form_body or (
        not request.args_to_json_body and content_type is not None and _FORM_TYPE in content_type.lower()
    )
    if as_form:
        pairs = [pair for a in members for pair in _pairs(a.sent_as, args[a.name])]
        if content_type is None:
            headers.append(("Content-Type", _FORM_TYPE))
        return urlencode(pairs, quote_via=quote, safe="").encode("ascii")
    if content_type is None:
        headers.append(("Content-Type", _JSON_TYPE))
    payload = {a.sent_as: args[a.name] for a in members}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
