"""The mock upstream and the plain nginx reverse proxy, both Debian's nginx with generated configs.

The mock answers ``POST /v1/chat/completions`` with a fixed OpenAI chat completion and any
other request with a small JSON, from nginx's ``return``: no body is built per request, so
it stays far faster than any proxy in front of it (``direct`` in the results shows how far).
Each nginx runs in the foreground as the current user, with every path in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.gateway.common import Service, SetupUnavailable, command_output, http_status, wait_until

CHAT_COMPLETION = json.dumps(
    {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello, benchmark."},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34},
    },
    separators=(",", ":"),
)

_COMMON = """
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 8192; multi_accept on; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    {body}
}}
"""

_MOCK = """
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        client_body_buffer_size 64k;
        location = /v1/chat/completions {{ return 200 '{completion}'; }}
        location / {{ return 200 '{{"ok":true}}'; }}
    }}
"""

_PROXY = """
    upstream mock {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://mock;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
        }}
    }}
"""


def nginx_path() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if found is None:
        raise SetupUnavailable("nginx is not installed (apt-get install -y nginx)")
    return found


def _nginx(name: str, folder: Path, *, workers: int, body: str) -> Service:
    folder.mkdir(parents=True, exist_ok=True)
    # As root, nginx would hand its workers to "nobody", who cannot write the temporary folder.
    user = "user root;" if os.geteuid() == 0 else ""
    config = f"worker_processes {workers};\n" + _COMMON.format(folder=folder, user=user, body=body)
    (folder / "nginx.conf").write_text(config)
    argv = [nginx_path(), "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(folder / "nginx.conf")]
    return Service(name, argv, folder / "stdout.log")


def mock_upstream(folder: Path, port: int, *, workers: int = 1) -> Service:
    # In a single-quoted nginx string only ' and \ need escaping; the JSON holds neither.
    service = _nginx("mock-upstream", folder, workers=workers, body=_MOCK.format(port=port, completion=CHAT_COMPLETION))
    service.start()
    wait_until("the mock upstream starts", lambda: http_status(f"http://127.0.0.1:{port}/") == 200, timeout=15)
    return service


def nginx_proxy(folder: Path, port: int, upstream_port: int, *, workers: int = 2) -> Service:
    body = _PROXY.format(port=port, upstream_port=upstream_port)
    return _nginx("nginx", folder, workers=workers, body=body)


def nginx_version() -> str:
    return command_output([nginx_path(), "-v"]).removeprefix("nginx version: ")
