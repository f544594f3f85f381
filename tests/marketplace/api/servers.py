"""Real servers on loopback for the marketplace API tests: a static file server (for
documents fetched by URL) and a real MCP server built with the ``mcp`` SDK, served by
uvicorn. Each runs in a daemon thread on a port the kernel picks."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations
from pydantic import BaseModel

LOOPBACK = "127.0.0.1"


@contextmanager
def serve_files(files: dict[str, tuple[str, bytes]]) -> Iterator[str]:
    """Serve ``{path: (content type, body)}``; other paths answer 404. Yields the base URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in files:
                self.send_error(404)
                return
            content_type, body = files[self.path]
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((LOOPBACK, 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="test-file-server", daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Forecast(BaseModel):
    city: str
    days: int
    summary: str


def weather_mcp_server() -> MCPServer:
    """A small MCP server: two tools (one with structured output), a resource, a prompt."""
    server = MCPServer("weather", title="Weather", version="1.2.0", instructions="Ask about the weather.")

    @server.tool(title="Weather forecast", annotations=ToolAnnotations(readOnlyHint=True))
    def get_forecast(city: str, days: int = 3) -> Forecast:
        """Get the weather forecast for a city, for up to a week."""
        return Forecast(city=city, days=days, summary="sunny")

    @server.tool()
    def list_alerts(region: str) -> str:
        """List the storm alerts of a region."""
        return f"No alerts in {region}."

    @server.resource("weather://cities", name="cities", description="The cities we forecast.")
    def cities() -> str:
        return "Paris\nLyon"

    @server.prompt()
    def plan_trip(city: str) -> str:
        """Plan a trip around the weather."""
        return f"Plan a trip to {city}."

    return server


@contextmanager
def serve_mcp(server: MCPServer) -> Iterator[str]:
    """Serve ``server`` over Streamable HTTP; yields its endpoint URL (``.../mcp``)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        server.streamable_http_app(host=LOOPBACK), log_config=None, log_level="warning", lifespan="on"
    )
    uvicorn_server = uvicorn.Server(config)
    thread = threading.Thread(
        target=uvicorn_server.run, kwargs={"sockets": [sock]}, name="test-mcp-server", daemon=True
    )
    thread.start()
    try:
        for _ in range(1000):
            if uvicorn_server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not uvicorn_server.started:
            raise RuntimeError("The test MCP server did not start.")
        yield f"http://{LOOPBACK}:{port}/mcp"
    finally:
        uvicorn_server.should_exit = True
        thread.join(timeout=30)
        sock.close()
