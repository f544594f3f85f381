"""``python -m gateway_sync.worker``: serve one gateway worker on uvloop until SIGTERM or
SIGINT, then stop gracefully (in-flight requests finish, background tasks are cancelled
and awaited, the heartbeat is withdrawn). Configured by the environment (docs/worker.md)."""

from __future__ import annotations

import logging
import os
import sys

import uvloop
from aiohttp import web

from gateway_sync.worker.app import create_app
from gateway_sync.worker.metrics import register_metrics
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.settings import WorkerSettings, WorkerSettingsError

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("gateway_sync.worker")

# What a worker serves besides /healthz and /readyz (app.create_app's route_registrars).
REGISTRARS = [register_rest_proxy, register_metrics]


def main() -> int:
    level = os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO"
    if level not in LOG_LEVELS:
        sys.stderr.write(f"gateway worker: LOG_LEVEL={level!r}: use one of {', '.join(LOG_LEVELS)}\n")
        return 2
    logging.basicConfig(level=level, format=LOG_FORMAT)
    try:
        settings = WorkerSettings.from_env()
    except WorkerSettingsError as exc:
        sys.stderr.write(f"gateway worker: {exc}\n")
        return 2
    mode = f"snapshots from {settings.snapshot_dir}" if settings.embedded else "snapshots from Redis"
    log.info("worker %s on http://%s:%d, %s", settings.worker_id, settings.host, settings.port, mode)
    # run_app stops on SIGINT and SIGTERM: it stops accepting, lets in-flight requests finish
    # (up to shutdown_timeout), then runs the cleanup contexts.
    web.run_app(
        create_app(settings, route_registrars=REGISTRARS),
        host=settings.host,
        port=settings.port,
        print=None,
        access_log=None,
        loop=uvloop.new_event_loop(),
    )
    log.info("worker %s stopped", settings.worker_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
