"""What the three ``python -m demo_upstreams.<name>`` entry points share: arguments, logging
and running an aiohttp application on uvloop."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Sequence

import uvloop
from aiohttp import web

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def parser_for(prog: str, description: str, *, default_port: int) -> argparse.ArgumentParser:
    """An argument parser with the options every demo upstream takes (``--host``, ``--port``,
    ``--log-level``); the caller adds its own before parsing."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=default_port, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="log level (default: %(default)s)",
    )
    return parser


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)


def logger_for(name: str) -> logging.Logger:
    return logging.getLogger(f"demo_upstreams.{name}")


def run_aiohttp(app: web.Application, *, host: str, port: int, name: str) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, on uvloop. Blocks."""
    logger_for(name).info("%s listening on http://%s:%d", name, host, port)
    # No access log: these servers sit under benchmarks, where a log line per request would
    # measure the logger instead of the gateway.
    web.run_app(app, host=host, port=port, print=None, access_log=None, loop=uvloop.new_event_loop())


def main_for(
    build: Callable[[argparse.Namespace], web.Application],
    parser: argparse.ArgumentParser,
    *,
    name: str,
    argv: Sequence[str] | None = None,
) -> None:
    """Parse ``argv``, configure logging, build the application and serve it."""
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    run_aiohttp(build(args), host=args.host, port=args.port, name=name)
