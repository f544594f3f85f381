"""demo-tools: an MCP server (official ``mcp`` SDK, 2.x) over Streamable HTTP at ``/mcp``.

Run it with ``python -m demo_upstreams.demo_mcp --host 127.0.0.1 --port 9103``, or build it in
process with ``create_app(port=...)`` (an ASGI app for uvicorn) or ``create_server()`` (the
``MCPServer``, e.g. for ``mcp.Client(server)`` in memory).

- Tools, each with an input and an output schema (structured content): ``add_numbers``,
  ``convert_units``, ``word_count``, ``current_time``, ``lookup_country``, ``slugify``.
- Resources: ``demo://countries``, ``demo://countries/{code}`` (a template), ``demo://units``.
- Prompts: ``country_briefing``, ``convert_recipe``.
- Host headers are checked (DNS-rebinding protection): ``127.0.0.1:PORT``,
  ``localhost:PORT`` and ``[::1]:PORT`` are accepted, plus any ``--allowed-host``.
- ``--tools-page-size N`` serves ``tools/list`` in pages of N, with ``nextCursor``.
"""

from __future__ import annotations

from demo_upstreams.demo_mcp.server import MCP_PATH, PRODUCT, create_app, create_server, transport_security

DEFAULT_PORT = 9103

__all__ = ["DEFAULT_PORT", "MCP_PATH", "PRODUCT", "create_app", "create_server", "transport_security"]
