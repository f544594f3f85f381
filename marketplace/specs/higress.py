"""Import and export of the Higress ``mcp-server`` plugin's REST-to-MCP configuration (YAML).

Supported (and round-tripped losslessly through `RestToMcpServer`)::

    server: {name, config?}                 # type: rest is accepted (it is the default)
    tools:
      - name, description, outputSchema?
        args: [{name, description, type, required, default, enum, items, properties, position}]
        requestTemplate: {url, method, headers: [{key, value}], body?,
                          argsToJsonBody?, argsToUrlParam?, argsToFormBody?}
        responseTemplate: {body?, prependBody?, appendBody?}

Refused with a precise error (never dropped silently), because the gateway cannot honour them:
``allowTools``; ``server.securitySchemes`` and the other ``server`` fields of the mcp-proxy and
security features; tool ``security`` and ``requestTemplate.security``;
``errorResponseTemplate``; tools without ``requestTemplate.url`` (direct-response tools);
tool URLs on different hosts (a REST-to-MCP server has one ``base_url``); and templates that
use more than field references (``range``, ``if``, functions: see `templates`).

The tool URL is split into the server's ``base_url`` (scheme, host and port) and the tool's
path; export joins them back.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from marketplace.specs.documents import load_mapping
from marketplace.specs.errors import SpecError
from marketplace.specs.rest_to_mcp import RestToMcpServer, validate_definition

__all__ = ["export_higress_yaml", "import_higress_yaml"]

_ARG_TYPES = ("string", "number", "integer", "boolean", "array", "object")
_ARG_SCHEMA_KEYS = ("type", "description", "enum", "default", "items", "properties")
_ORIGIN = re.compile(r"(https?://[^/?#]*)(.*)", re.DOTALL)
_UNSUPPORTED = {
    "allowTools": "allowTools is not supported: remove the tools you do not want to expose instead",
    "server.securitySchemes": "security schemes are not supported: send credentials with a header "
    "whose value reads them from server.config, e.g. 'Bearer {{.config.token}}'",
    "server.defaultDownstreamSecurity": "client-to-gateway security is configured by the marketplace, not here",
    "server.defaultUpstreamSecurity": "security schemes are not supported: use a header reading server.config",
    "server.passthroughAuthHeader": "passing the client's Authorization header to the upstream is forbidden",
    "server.mcpServerURL": "mcp-proxy servers are registered as MCP servers, not imported as REST-to-MCP",
    "server.transport": "mcp-proxy servers are registered as MCP servers, not imported as REST-to-MCP",
    "server.timeout": "timeouts are set on the marketplace route, not in the tool definition",
    "security": "tool-level security is not supported: the marketplace authenticates callers itself",
    "errorResponseTemplate": "errorResponseTemplate is not supported: error responses are returned as "
    "'HTTP <status>' followed by the body",
    "requestTemplate.security": "security schemes are not supported: send credentials with a header "
    "whose value reads them from server.config",
}
# Our field names -> Higress's, to report problems found by validate_definition in the
# user's own terms.
_RENAMES = (
    (".request.path", ".requestTemplate.url"),
    (".request.body_template", ".requestTemplate.body"),
    (".request.args[", ".args["),
    (".request.args", ".args"),
    (".request", ".requestTemplate"),
    ("args_to_json_body", "argsToJsonBody"),
    ("args_to_url_param", "argsToUrlParam"),
    ("args_to_form_body", "argsToFormBody"),
    ("args_to_*", "argsToJsonBody/argsToUrlParam/argsToFormBody"),
    ("body_template", "requestTemplate.body"),
    (".input_schema.properties", ".args"),
    (".input_schema", ".args"),
    (".output_schema", ".outputSchema"),
    (".response_template", ".responseTemplate.body"),
    ("response_prepend and response_append", "prependBody and appendBody"),
    ("response_template", "responseTemplate.body"),
    ("base_url", "requestTemplate.url"),
)


def import_higress_yaml(text: str | bytes, *, max_bytes: int = 1_000_000) -> RestToMcpServer:
    """Parse a Higress mcp-server configuration into a validated `RestToMcpServer`."""
    root = load_mapping(text, max_bytes=max_bytes, what="Higress configuration")
    _refuse_unknown(root, ("server", "tools"), "")
    server = root.get("server")
    if not isinstance(server, dict):
        raise SpecError("server: is required (an object with at least a name).", field="server")
    _refuse_unknown(server, ("name", "config", "type"), "server")
    if server.get("type", "rest") != "rest":
        raise SpecError(f"server.type: {server['type']!r} is not supported; only 'rest' servers can be imported.")
    tools = root.get("tools")
    if not isinstance(tools, list) or not tools:
        raise SpecError("tools: a REST-to-MCP configuration needs a list of at least one tool.", field="tools")
    converted = [_tool(raw, f"tools[{i}]") for i, raw in enumerate(tools)]
    origins = sorted({origin for origin, _ in converted})
    if len(origins) > 1:
        raise SpecError(
            "The tools call different hosts ("
            + ", ".join(repr(o or "(relative URL)") for o in origins)
            + "); a REST-to-MCP server has one base URL, so import them as separate servers.",
            field="tools",
        )
    definition = {
        "name": server.get("name"),
        "base_url": origins[0],
        "config": server.get("config") or {},
        "tools": [tool for _, tool in converted],
    }
    try:
        return validate_definition(definition)
    except SpecError as exc:
        raise SpecError(
            _rename(exc.message),
            field=_rename(exc.field) if exc.field else None,
            details=[_rename(d) for d in exc.details],
        ) from None


def export_higress_yaml(server: RestToMcpServer, *, strict: bool = False) -> str:
    """The Higress mcp-server configuration (YAML) for ``server``.

    Argument schemas carry over only what Higress args can express (type, description, enum,
    default, items, properties). Other JSON Schema keywords (``format``, ``minimum``,
    ``additionalProperties``...) are left out, as Higress would ignore them; with
    ``strict=True`` any such loss raises SpecError instead. An argument sent under another name
    (``wire_name``) always raises: Higress cannot rename arguments.
    """
    lost: list[str] = []
    tools = [_export_tool(server, i, lost) for i in range(len(server.tools))]
    if strict and lost:
        raise SpecError(f"Exporting to Higress would lose {lost[0]} (and {len(lost) - 1} more).", details=lost)
    data: dict[str, Any] = {"server": {"name": server.name}}
    if server.config:
        data["server"]["config"] = server.config
    data["tools"] = tools
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (templates) as literal blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _represent_str)


_RENAME_PATTERN = re.compile("|".join(re.escape(ours) for ours, _ in _RENAMES))
_RENAME_MAP = dict(_RENAMES)


def _rename(text: str) -> str:
    # One pass, earlier (longer) names first: a replaced name is never renamed again.
    return _RENAME_PATTERN.sub(lambda m: _RENAME_MAP[m.group(0)], text)


def _refuse_unknown(raw: dict[str, Any], known: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key in known:
            continue
        qualified = f"{where}.{key}" if where else key
        generic = re.sub(r"^tools\[\d+\]\.", "", qualified)
        reason = _UNSUPPORTED.get(generic) or f"unknown field (expected: {', '.join(known)})"
        raise SpecError(f"{qualified}: {reason}.", field=qualified)


def _tool(raw: Any, where: str) -> tuple[str, dict[str, Any]]:
    """(origin of the tool's URL, the tool in `validate_definition` form)."""
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be an object with name, description, args and requestTemplate.", field=where)
    _refuse_unknown(raw, ("name", "description", "args", "requestTemplate", "responseTemplate", "outputSchema"), where)
    request = raw.get("requestTemplate")
    if not isinstance(request, dict) or not request.get("url"):
        raise SpecError(
            f"{where}.requestTemplate.url: is required; tools that answer without an HTTP request "
            "(direct-response tools) are not supported.",
            field=f"{where}.requestTemplate.url",
        )
    _refuse_unknown(
        request,
        ("url", "method", "headers", "body", "argsToJsonBody", "argsToUrlParam", "argsToFormBody"),
        f"{where}.requestTemplate",
    )
    origin, path = _split_url(request["url"], f"{where}.requestTemplate.url")
    properties: dict[str, Any] = {}
    required: list[str] = []
    args: list[dict[str, Any]] = []
    raw_args = raw.get("args") or []
    if not isinstance(raw_args, list):
        raise SpecError(f"{where}.args: must be a list.", field=f"{where}.args")
    for j, arg in enumerate(raw_args):
        name, prop, mapping = _arg(arg, f"{where}.args[{j}]")
        properties[name] = prop
        if mapping["required"]:
            required.append(name)
        args.append(mapping)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    tool: dict[str, Any] = {
        "name": raw.get("name"),
        "description": raw.get("description", ""),
        "input_schema": schema,
        "request": {
            "method": request.get("method"),
            "path": path,
            "args": args,
            "headers": request.get("headers") or [],
            "body_template": request.get("body"),
            "args_to_json_body": request.get("argsToJsonBody", False),
            "args_to_url_param": request.get("argsToUrlParam", False),
            "args_to_form_body": request.get("argsToFormBody", False),
        },
    }
    if raw.get("outputSchema") is not None:
        tool["output_schema"] = raw["outputSchema"]
    response = raw.get("responseTemplate")
    if response is not None:
        if not isinstance(response, dict):
            raise SpecError(f"{where}.responseTemplate: must be an object.", field=f"{where}.responseTemplate")
        _refuse_unknown(response, ("body", "prependBody", "appendBody"), f"{where}.responseTemplate")
        tool["response_template"] = response.get("body") or None
        tool["response_prepend"] = response.get("prependBody", "")
        tool["response_append"] = response.get("appendBody", "")
    return origin, tool


def _split_url(url: Any, where: str) -> tuple[str, str]:
    if not isinstance(url, str):
        raise SpecError(f"{where}: must be a string.", field=where)
    match = _ORIGIN.fullmatch(url)
    if match:
        origin, path = match.group(1), match.group(2)
        if "{" in origin:
            raise SpecError(f"{where}: templates are only supported in the URL's path and query, not its host.")
        return origin, path
    if url.startswith("/"):
        return "", url
    raise SpecError(f"{where}: {url!r} must be an absolute http(s) URL or a path starting with '/'.", field=where)


def _arg(raw: Any, where: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    if not isinstance(raw, dict):
        raise SpecError(f"{where}: must be an object with name and description.", field=where)
    _refuse_unknown(raw, ("name", *_ARG_SCHEMA_KEYS, "required", "position"), where)
    name = raw.get("name")
    if not isinstance(name, str):
        raise SpecError(f"{where}.name: is required.", field=f"{where}.name")
    kind = raw.get("type", "string")
    if kind not in _ARG_TYPES:
        raise SpecError(f"{where}.type: {kind!r} is not one of {', '.join(_ARG_TYPES)}.", field=f"{where}.type")
    prop: dict[str, Any] = {"type": kind}
    for key in ("description", "enum", "default", "items", "properties"):
        if key in raw:
            prop[key] = raw[key]
    position = raw.get("position")
    if isinstance(position, str):
        position = position.lower()
    return name, prop, {"name": name, "position": position, "required": raw.get("required", False)}


def _export_tool(server: RestToMcpServer, index: int, lost: list[str]) -> dict[str, Any]:
    tool = server.tools[index]
    where = f"tools[{index}]"
    properties = tool.input_schema.get("properties") or {}
    for key in tool.input_schema:
        if key not in ("type", "properties", "required"):
            lost.append(f"{where}.input_schema.{key}")
    args: list[dict[str, Any]] = []
    for j, mapping in enumerate(tool.request.args):
        if mapping.wire_name is not None and mapping.wire_name != mapping.name:
            raise SpecError(
                f"{where}.args[{j}]: argument {mapping.name!r} is sent as {mapping.wire_name!r}, and Higress "
                "cannot send an argument under another name.",
                field=f"{where}.args[{j}]",
            )
        prop = properties.get(mapping.name) or {}
        entry: dict[str, Any] = {"name": mapping.name, "description": prop.get("description", "")}
        kind = prop.get("type")
        if isinstance(kind, list):
            single = [k for k in kind if k != "null"]
            lost.append(f"{where}.args[{j}].type {kind!r}")
            kind = single[0] if single else None
        if kind is not None:
            entry["type"] = kind
        for key in ("enum", "default", "items", "properties"):
            if key in prop:
                entry[key] = prop[key]
        lost.extend(f"{where}.args[{j}].{key}" for key in prop if key not in _ARG_SCHEMA_KEYS)
        if mapping.required:
            entry["required"] = True
        if mapping.position is not None:
            entry["position"] = mapping.position
        args.append(entry)
    request: dict[str, Any] = {"url": server.base_url + tool.request.path, "method": tool.request.method}
    if tool.request.headers:
        request["headers"] = [{"key": h.key, "value": h.value} for h in tool.request.headers]
    if tool.request.body_template is not None:
        request["body"] = tool.request.body_template
    for ours, theirs in (
        ("args_to_json_body", "argsToJsonBody"),
        ("args_to_url_param", "argsToUrlParam"),
        ("args_to_form_body", "argsToFormBody"),
    ):
        if getattr(tool.request, ours):
            request[theirs] = True
    out: dict[str, Any] = {"name": tool.name, "description": tool.description, "args": args, "requestTemplate": request}
    if tool.response_template is not None:
        out["responseTemplate"] = {"body": tool.response_template}
    elif tool.response_prepend or tool.response_append:
        out["responseTemplate"] = {
            k: v for k, v in (("prependBody", tool.response_prepend), ("appendBody", tool.response_append)) if v
        }
    if tool.output_schema is not None:
        out["outputSchema"] = tool.output_schema
    return out
