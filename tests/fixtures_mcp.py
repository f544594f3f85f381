"""Small MCP servers built with the `mcp` SDK, for tests that need an upstream with
particular tools."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette


def weather_server() -> MCPServer:
    """A weather MCP server whose tool descriptions share no word with "rain" queries'
    usual phrasing in product names, for semantic search tests."""
    server: MCPServer = MCPServer("skies", version="1.0.0")

    @server.tool(
        name="get_forecast",
        description="Precipitation probability, temperature and wind for the next three days at a place.",
    )
    def get_forecast(place: str) -> dict[str, Any]:
        return {"place": place, "days": [{"precipitation_probability": 0.8, "temperature_c": 11, "wind_kph": 20}]}

    @server.tool(name="get_air_quality", description="The air quality index and pollutant levels at a place.")
    def get_air_quality(place: str) -> dict[str, Any]:
        return {"place": place, "aqi": 42}

    return server


def app_for(server: MCPServer, port: int) -> Starlette:
    hosts = [f"127.0.0.1:{port}", f"localhost:{port}"]
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=[f"http://{h}" for h in hosts]
    )
    return server.streamable_http_app(streamable_http_path="/mcp", transport_security=security)
