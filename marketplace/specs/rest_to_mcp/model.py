"""The REST-to-MCP definition model: how each MCP tool call becomes one HTTP request.

Semantics follow the Higress ``mcp-server`` plugin, so definitions import and export losslessly
(see `marketplace.specs.higress`), with safer rendering (see `render`):

- ``RequestTemplate.path`` is appended to ``RestToMcpServer.base_url``. It may hold
  ``{name}`` placeholders, each filled by the argument of that name whose position is
  ``path``, and template actions ``{{.args.NAME}}`` / ``{{.config.KEY}}`` (`templates`).
- Header values and ``body_template`` may hold the same template actions.
- An argument's ``position`` places it automatically: ``path``, ``query``, ``header``,
  ``cookie`` or ``body`` (a member of the JSON or form body). ``None`` places it nowhere by
  itself: it is used through a template action, or by ``args_to_json_body`` /
  ``args_to_url_param`` / ``args_to_form_body``, which send every such argument as a JSON
  body member, a query parameter or a form field.
- ``wire_name`` is the name sent on the wire when it differs from the tool argument's name
  (OpenAPI parameters such as ``filter[status]`` get a name LLM providers accept).
- ``input_schema`` is the JSON Schema of the arguments; it has one property per argument.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "HTTP_METHODS",
    "POSITIONS",
    "ArgMapping",
    "Header",
    "Position",
    "RequestTemplate",
    "RestToMcpServer",
    "RestToMcpTool",
]

Position = Literal["path", "query", "header", "cookie", "body"]
POSITIONS: tuple[Position, ...] = ("path", "query", "header", "cookie", "body")
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


@dataclass(frozen=True, slots=True)
class ArgMapping:
    """Where one tool argument goes in the HTTP request."""

    name: str
    position: Position | None
    required: bool = False
    wire_name: str | None = None

    @property
    def sent_as(self) -> str:
        """The parameter, header, cookie or body member name used on the wire."""
        return self.wire_name or self.name

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "position": self.position, "required": self.required, "wire_name": self.wire_name}


@dataclass(frozen=True, slots=True)
class Header:
    """A static request header; ``value`` may hold template actions."""

    key: str
    value: str

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "value": self.value}


@dataclass(frozen=True, slots=True)
class RequestTemplate:
    """The HTTP request of one tool. At most one of the ``args_to_*`` flags may be set."""

    method: str
    path: str
    args: list[ArgMapping] = field(default_factory=list)
    headers: list[Header] = field(default_factory=list)
    body_template: str | None = None
    args_to_json_body: bool = False
    args_to_url_param: bool = False
    args_to_form_body: bool = False

    def arg(self, name: str) -> ArgMapping | None:
        return next((a for a in self.args if a.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "args": [a.to_dict() for a in self.args],
            "headers": [h.to_dict() for h in self.headers],
            "body_template": self.body_template,
            "args_to_json_body": self.args_to_json_body,
            "args_to_url_param": self.args_to_url_param,
            "args_to_form_body": self.args_to_form_body,
        }


@dataclass(frozen=True, slots=True)
class RestToMcpTool:
    """One MCP tool backed by one HTTP request.

    The response is turned into the tool's text by ``response_template`` (a template over the
    JSON response body), or else by wrapping the raw body in ``response_prepend`` and
    ``response_append``; the two styles exclude each other.
    """

    name: str
    description: str
    input_schema: dict[str, Any]
    request: RequestTemplate
    response_template: str | None = None
    response_prepend: str = ""
    response_append: str = ""
    output_schema: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "input_schema": self.input_schema,
            "output_schema": self.output_schema,
            "request": self.request.to_dict(),
            "response_template": self.response_template,
            "response_prepend": self.response_prepend,
            "response_append": self.response_append,
        }


@dataclass(frozen=True, slots=True)
class RestToMcpServer:
    """A REST API seen as an MCP server.

    ``base_url`` is the upstream's absolute http(s) URL, or ``""`` when the gateway route
    supplies it. ``config`` holds values the templates read as ``{{.config.KEY}}`` (API keys,
    for instance); it is a JSON object.
    """

    name: str
    base_url: str
    tools: list[RestToMcpTool]
    config: dict[str, Any] = field(default_factory=dict)

    def tool(self, name: str) -> RestToMcpTool | None:
        return next((t for t in self.tools if t.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The stored form; `validate_definition` turns it back into an equal server."""
        return {
            "name": self.name,
            "base_url": self.base_url,
            "config": self.config,
            "tools": [t.to_dict() for t in self.tools],
        }
