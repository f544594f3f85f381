"""The MCP Registry-compatible API: a public read API (``/v0.1/servers``) that lists the
catalog's MCP servers in the official registry's server.json shape, pointing at our
gateway, and an import of servers from a document in that shape. See docs/registry.md."""
