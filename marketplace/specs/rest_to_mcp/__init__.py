"""REST-to-MCP: tools backed by HTTP requests.

- `model`: the definition dataclasses (`RestToMcpServer`, `RestToMcpTool`, `RequestTemplate`,
  `ArgMapping`, `Header`).
- `validate_definition`: a stored definition (``RestToMcpServer.to_dict()``), checked.
- `tools_from_openapi`: one tool per OpenAPI operation.
- `render_request` / `render_response`: the pure functions the gateway worker calls per call.
"""

from __future__ import annotations

from marketplace.specs.rest_to_mcp.from_openapi import tools_from_openapi
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
from marketplace.specs.rest_to_mcp.render import RenderedRequest, join_url, render_request, render_response
from marketplace.specs.rest_to_mcp.validate import validate_definition

__all__ = [
    "HTTP_METHODS",
    "POSITIONS",
    "ArgMapping",
    "Header",
    "Position",
    "RenderedRequest",
    "RequestTemplate",
    "RestToMcpServer",
    "RestToMcpTool",
    "join_url",
    "render_request",
    "render_response",
    "tools_from_openapi",
    "validate_definition",
]
