"""The set-ups under test, each started and stopped by the bench, all in front of the same mock.

Every set-up answers the same request (``load.CHAT_REQUEST``, POSTed with an auth header)
with the mock's chat completion. ``start`` returns where to send it and which processes do
the proxy's work (their CPU time is measured); it raises SetupUnavailable, with the reason,
when the set-up cannot be installed or started here.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import redis
from bench.gateway import world
from bench.gateway.common import (
    LITELLM_VENV,
    PORTKEY_DIR,
    ROOT,
    Service,
    SetupUnavailable,
    command_output,
    free_port,
    http_status,
    wait_until,
)
from bench.gateway.load import CHAT_REQUEST
from bench.gateway.upstream import nginx_proxy, nginx_version

LITELLM_MASTER_KEY = "sk-bench-master"
UPSTREAM_KEY = "sk-mock-upstream"
PORTKEY_ENTRY = PORTKEY_DIR / "node_modules" / "@portkey-ai" / "gateway" / "build" / "start-server.js"


@dataclass
class Running:
    url: str
    headers: dict[str, str]
    # Whose process trees do the proxying (their CPU seconds are measured).
    services: list[Service] = field(default_factory=list)
    processes: int = 1
    notes: list[str] = field(default_factory=list)


class Setup:
    name = ""
    description = ""

    def __init__(self, folder: Path, upstream_port: int) -> None:
        self.folder = folder / self.name
        self.upstream_port = upstream_port
        self.services: list[Service] = []

    def version(self) -> str:
        return ""

    def start(self) -> Running:
        raise NotImplementedError

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()
        self.services.clear()

    def _serve(self, service: Service) -> Service:
        self.services.append(service)
        service.start()
        return service

    def _wait_answering(self, running: Running, *, timeout: float, service: Service) -> None:
        def answers() -> bool:
            headers = {**running.headers, "Content-Type": "application/json"}
            status = http_status(running.url, method="POST", body=CHAT_REQUEST.encode(), headers=headers)
            return status == 200

        wait_until(f"{self.name} answers 200", answers, timeout=timeout, service=service)


class Direct(Setup):
    name = "direct"
    description = "wrk straight to the mock upstream (the floor every proxy adds to)"

    def start(self) -> Running:
        url = f"http://127.0.0.1:{self.upstream_port}/v1/chat/completions"
        return Running(url, {"Authorization": f"Bearer {UPSTREAM_KEY}"}, processes=0)


class Nginx(Setup):
    name = "nginx"
    description = "Debian nginx as a plain reverse proxy: 2 workers, keep-alive upstream pool, proxy_buffering off"

    def version(self) -> str:
        return nginx_version()

    def start(self) -> Running:
        port = free_port()
        service = self._serve(nginx_proxy(self.folder, port, self.upstream_port, workers=2))
        running = Running(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"Authorization": f"Bearer {UPSTREAM_KEY}"},
            services=[service],
            processes=2,
        )
        self._wait_answering(running, timeout=15, service=service)
        return running


class LiteLLM(Setup):
    name = "litellm"
    description = "LiteLLM proxy (own venv), master key, no database, 2 workers"

    def version(self) -> str:
        python = LITELLM_VENV / "bin" / "python"
        return command_output([str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"])

    def start(self) -> Running:
        executable = LITELLM_VENV / "bin" / "litellm"
        if not executable.exists():
            raise SetupUnavailable(f"LiteLLM is not installed in {LITELLM_VENV} (bench/gateway/install.sh)")
        self.folder.mkdir(parents=True, exist_ok=True)
        config = {
            "model_list": [
                {
                    "model_name": "bench-model",
                    "litellm_params": {
                        "model": "openai/bench-model",
                        "api_base": f"http://127.0.0.1:{self.upstream_port}/v1",
                        "api_key": UPSTREAM_KEY,
                    },
                }
            ],
            "general_settings": {"master_key": LITELLM_MASTER_KEY},
            "litellm_settings": {"telemetry": False},
        }
        # JSON is YAML: no YAML writer needed.
        (self.folder / "config.yaml").write_text(json.dumps(config, indent=2))
        port = free_port()
        argv = [str(executable), "--config", str(self.folder / "config.yaml"), "--host", "127.0.0.1"]
        argv += ["--port", str(port), "--num_workers", "2"]
        # uvicorn's supervisor kills a worker whose health-check answer is late (5 s by
        # default); under this load a LiteLLM worker misses it, is killed and spends ~20 s
        # importing again. LiteLLM documents this option for that case.
        argv += ["--timeout_worker_healthcheck", "60"]
        env = {
            # The model price list ships in the package; without this it is fetched at start.
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
        }
        service = self._serve(Service(self.name, argv, self.folder / "litellm.log", env=env, cwd=self.folder))
        running = Running(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"},
            services=[service],
            processes=2,
            notes=[
                "started with --timeout_worker_healthcheck 60: with uvicorn's default (5 s) its workers were "
                "killed and restarted under load"
            ],
        )
        self._wait_answering(running, timeout=120, service=service)
        return running


class Portkey(Setup):
    name = "portkey"
    description = "Portkey's gateway (@portkey-ai/gateway from npm, Node), provider openai with a custom host"

    def version(self) -> str:
        try:
            return str(json.loads((PORTKEY_ENTRY.parents[1] / "package.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            return ""

    def start(self) -> Running:
        if not PORTKEY_ENTRY.exists():
            raise SetupUnavailable(
                f"@portkey-ai/gateway is not installed under {PORTKEY_DIR} (bench/gateway/install.sh)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = ["node", str(PORTKEY_ENTRY), f"--port={port}", "--headless"]
        # Production mode: no development console, as a deployment would run it.
        env = {"NODE_ENV": "production"}
        service = self._serve(Service(self.name, argv, self.folder / "portkey.log", env=env, cwd=self.folder))
        running = Running(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {
                "Authorization": f"Bearer {UPSTREAM_KEY}",
                "x-portkey-provider": "openai",
                "x-portkey-custom-host": f"http://127.0.0.1:{self.upstream_port}/v1",
            },
            services=[service],
            processes=1,
            notes=["one Node process: the gateway's start-server has no worker or cluster option"],
        )
        self._wait_answering(running, timeout=30, service=service)
        return running


def supervisor_landed() -> bool:
    """Whether the worker can run several processes on one port (SO_REUSEPORT)."""
    for path in (ROOT / "gateway_sync" / "worker").glob("*.py"):
        text = path.read_text(errors="replace")
        if "reuse_port" in text or "SO_REUSEPORT" in text:
            return True
    return False


class Ours(Setup):
    name = "ours"
    description = "our worker (python -m gateway_sync.worker), Redis mode: snapshot from Redis, exact Redis limiter"

    def __init__(
        self,
        folder: Path,
        upstream_port: int,
        *,
        redis_url: str,
        processes: int = 2,
        snapshot: world.SnapshotBuilder = world.bench_snapshot,
        path: str = f"/api/{world.PRODUCT_SLUG}/v1/chat/completions",
        description: str = "",
        source: Path = ROOT,
        source_label: str = "",
    ) -> None:
        super().__init__(folder, upstream_port)
        self.redis_url = redis_url
        self.wanted_processes = processes
        self.snapshot = snapshot
        self.path = path
        self.description = description or self.description
        # Where ``gateway_sync`` is imported from: the working tree, or an export of a commit
        # (``source_label`` then says which).
        self.source = source
        self.source_label = source_label

    def version(self) -> str:
        if self.source_label:
            return self.source_label
        commit = command_output(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
        dirty = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "gateway_sync"])
        return f"commit {commit}" + (" + uncommitted changes in gateway_sync/" if dirty else "")

    def redis_pid(self) -> int | None:
        try:
            client = redis.Redis.from_url(self.redis_url)
            info = client.info("server")
            client.close()
        except redis.RedisError:
            return None
        pid = info.get("process_id")
        return int(pid) if pid and Path(f"/proc/{pid}").exists() else None

    def start(self) -> Running:
        try:
            world.publish_bench_snapshot(self.redis_url, self.upstream_port, self.snapshot)
        except redis.RedisError as exc:
            raise SetupUnavailable(f"Redis at {self.redis_url} is unreachable: {exc}") from exc
        notes = []
        processes = self.wanted_processes if supervisor_landed() else 1
        if processes != self.wanted_processes:
            notes.append(f"1 process, not {self.wanted_processes}: the multi-process supervisor has not landed")
        elif processes > 1:
            notes.append(f"GATEWAY_WORKERS={processes}: {processes} processes on one port (SO_REUSEPORT)")
        self.folder.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(port),
            "REDIS_URL": self.redis_url,
            "KEY_HASH_PEPPER": world.PEPPER,
            "GATEWAY_WORKERS": str(processes),
            "PLATFORM_VAR_DIR": str(self.folder / "var"),
            "LOG_LEVEL": "WARNING",
        }
        argv = [sys.executable, "-m", "gateway_sync.worker"]
        service = self._serve(Service(self.name, argv, self.folder / "worker.log", env=env, cwd=self.source))
        url = f"http://127.0.0.1:{port}{self.path}"
        running = Running(
            url, {"Authorization": f"Bearer {world.API_KEY}"}, services=[service], processes=processes, notes=notes
        )

        def all_ready() -> bool:
            # With several processes, one readiness answer speaks for one of them only.
            return all(http_status(f"http://127.0.0.1:{port}/readyz") == 200 for _ in range(4 * processes))

        wait_until("our worker is ready", all_ready, timeout=30, service=service)
        self._wait_answering(running, timeout=15, service=service)
        return running

    def stop(self) -> None:
        super().stop()
        try:
            client = redis.Redis.from_url(self.redis_url)
            world.flush_gateway_keys(client)
            client.close()
        except redis.RedisError:
            pass
