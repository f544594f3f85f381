"""``python -m gateway_sync.worker``: serve one gateway worker on uvloop until SIGTERM or
SIGINT, then drain it (serve.py: /readyz says draining, in-flight requests finish,
background tasks are cancelled and awaited, the heartbeat is withdrawn). With
``GATEWAY_WORKERS`` other than 1, a supervisor runs that many of them on the same port
instead (processes.py). Configured by the environment (docs/worker.md)."""

from __future__ import annotations

import logging
import os
import signal
import sys

import uvloop

from gateway_sync.worker.app import create_app
from gateway_sync.worker.metrics_shared import register_metrics
from gateway_sync.worker.processes import (
    SUPERVISOR_PID_ENV,
    EmbeddedMultiprocessError,
    check_can_supervise,
    die_with_supervisor,
    supervise,
)
from gateway_sync.worker.proxy_llm import register_llm_proxy
from gateway_sync.worker.proxy_mcp import register_mcp_proxy
from gateway_sync.worker.proxy_rest import register_rest_proxy
from gateway_sync.worker.serve import CannotListen, serve
from gateway_sync.worker.settings import WorkerSettings, WorkerSettingsError
from gateway_sync.worker.usage_emitter import register_usage_emitter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

log = logging.getLogger("gateway_sync.worker")

# What a worker serves besides /healthz and /readyz (app.create_app's route_registrars).
REGISTRARS = [register_rest_proxy, register_mcp_proxy, register_llm_proxy, register_metrics, register_usage_emitter]


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
    supervised = SUPERVISOR_PID_ENV in os.environ
    if supervised:
        die_with_supervisor()
    elif settings.workers != 1:
        try:
            check_can_supervise(settings)
        except EmbeddedMultiprocessError as exc:
            sys.stderr.write(f"gateway worker: {exc}\n")
            return 2
        return supervise(settings)
    mode = f"snapshots from {settings.snapshot_dir}" if settings.embedded else "snapshots from Redis"
    log.info("worker %s on http://%s:%d, %s", settings.worker_id, settings.host, settings.port, mode)
    app = create_app(settings, route_registrars=REGISTRARS)
    try:
        # Siblings under one supervisor share the port (SO_REUSEPORT); a lone worker must not,
        # so that a second one on a taken port fails instead of sharing it.
        uvloop.run(serve(app, settings, reuse_port=supervised))
    except CannotListen as exc:
        log.error("worker %s %s", settings.worker_id, exc)
        return 1
    # Stopped cleanly: a late signal (a supervisor's second one) must not turn that into a kill.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)
    log.info("worker %s stopped", settings.worker_id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
