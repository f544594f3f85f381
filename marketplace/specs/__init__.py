"""Pure-Python specification tools: no Django models, no database.

They take already-fetched documents and return plain dataclasses, and raise one exception,
`errors.SpecError`, whose messages are shown to providers as they are.

- `openapi.parse_openapi`: OpenAPI 3.0/3.1 documents (JSON or YAML) into operations.
- `tool_names`: tool names every LLM provider accepts.
- `rest_to_mcp`: the REST-to-MCP definition model, its validation, ``tools_from_openapi``, and
  the pure ``render_request`` / ``render_response`` the gateway worker calls.
- `higress`: import and export of Higress ``mcp-server`` REST-to-MCP YAML.
- `agent_card.parse_agent_card`: A2A agent cards, v0.3 and v1.0.
- `mcp_discovery.discover_mcp_server`: what a remote MCP server offers (tools, resources,
  templates, prompts), through the official ``mcp`` SDK client.

Submodules are imported explicitly (nothing is re-exported here), so that importing one tool
does not load the MCP SDK or the OpenAPI validator.
"""
