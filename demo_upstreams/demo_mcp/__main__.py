"""``python -m demo_upstreams.demo_mcp [--host H] [--port 9103] [--allowed-host HOST:PORT ...]
[--tools-page-size N] [--stateless] [--json-response]``"""

from __future__ import annotations

from collections.abc import Sequence

import uvicorn

from demo_upstreams import _cli
from demo_upstreams.demo_mcp import DEFAULT_PORT, MCP_PATH, PRODUCT, create_app


def main(argv: Sequence[str] | None = None) -> None:
    parser = _cli.parser_for(
        "python -m demo_upstreams.demo_mcp",
        "demo-tools: an MCP server over Streamable HTTP.",
        default_port=DEFAULT_PORT,
    )
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="another Host header to accept besides 127.0.0.1, localhost and [::1] on --port (repeatable)",
    )
    parser.add_argument("--tools-page-size", type=int, default=None, help="serve tools/list in pages of this size")
    parser.add_argument("--stateless", action="store_true", help="serve without MCP sessions")
    parser.add_argument("--json-response", action="store_true", help="answer POSTs with JSON, not SSE")
    args = parser.parse_args(argv)
    _cli.configure_logging(args.log_level)
    app = create_app(
        port=args.port,
        extra_hosts=args.allowed_host,
        tools_page_size=args.tools_page_size,
        stateless=args.stateless,
        json_response=args.json_response,
    )
    _cli.logger_for(PRODUCT).info("%s serving MCP at http://%s:%d%s", PRODUCT, args.host, args.port, MCP_PATH)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        log_config=None,
        log_level=args.log_level.lower(),
        access_log=False,
    )


if __name__ == "__main__":
    main()
