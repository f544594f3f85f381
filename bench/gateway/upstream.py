"""The mock upstream and the plain nginx reverse proxy, both Debian's nginx with generated configs.

The mock answers ``POST /v1/chat/completions`` with a fixed OpenAI chat completion and any
other request with a small JSON, from nginx's ``return``: no body is built per request, so
it stays far faster than any proxy in front of it (``direct`` in the results shows how far).
The LLM mock (``llm_mock_upstream``) also answers a request whose body says ``"stream": true``
with a fixed SSE stream (``STREAM_EVENTS``). Each nginx runs in the foreground as the current
user, with every path in a temporary folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from bench.gateway.common import Service, SetupUnavailable, command_output, free_port, http_status, wait_until

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

STREAM_TEXT = (
    "Hello",
    ",",
    " bench",
    "mark",
    ".",
    " This",
    " is",
    " a",
    " fixed",
    " stream",
    " of",
    " small",
    " deltas",
    " from",
    " the",
    " mock",
    " upstream",
    ".",
)


def _chunk(delta: dict[str, str], finish_reason: str | None = None) -> dict[str, object]:
    return {
        "id": "chatcmpl-bench0001",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


# 20 chunks (the role, 18 small deltas, the finish), the usage chunk, then [DONE].
STREAM_EVENTS: tuple[str, ...] = (
    *(
        json.dumps(event, separators=(",", ":"))
        for event in (
            _chunk({"role": "assistant", "content": ""}),
            *(_chunk({"content": text}) for text in STREAM_TEXT),
            _chunk({}, "stop"),
            {
                "id": "chatcmpl-bench0001",
                "object": "chat.completion.chunk",
                "created": 1700000000,
                "model": "bench-model",
                "choices": [],
                "usage": {
                    "prompt_tokens": 30,
                    "completion_tokens": len(STREAM_TEXT),
                    "total_tokens": 30 + len(STREAM_TEXT),
                },
            },
        )
    ),
    "[DONE]",
)
STREAM_BODY = "".join(f"data: {event}\n\n" for event in STREAM_EVENTS)

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

# nginx reads a body only for a proxied request: the front server reads it, tells from it
# whether the client wants a stream (the map on $request_body, evaluated when the proxied
# request's headers are built, after the body is read) and asks the back server, which
# answers from ``return`` by that header. Both share the mock's one worker process.
_LLM_MOCK = """
    map $request_body $llm_answer {{
        "~\\"stream\\"\\s*:\\s*true" stream;
        default whole;
    }}
    upstream llm_back {{
        server 127.0.0.1:{back_port};
        keepalive 256;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        client_body_buffer_size 64k;
        client_body_in_single_buffer on;
        location = /v1/chat/completions {{
            proxy_pass http://llm_back;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Llm-Answer $llm_answer;
            proxy_method GET;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_buffering off;
        }}
        location / {{ default_type application/json; return 200 '{{"ok":true}}'; }}
    }}
    server {{
        listen 127.0.0.1:{back_port} backlog=4096;
        open_file_cache max=16;
        location / {{
            if ($http_x_llm_answer = stream) {{ rewrite ^ /stream last; }}
            default_type application/json;
            return 200 '{completion}';
        }}
        location = /stream {{
            default_type text/event-stream;
            add_header Cache-Control no-cache;
            alias {folder}/stream.sse;
        }}
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


def llm_mock_upstream(folder: Path, port: int, *, workers: int = 1) -> Service:
    """The mock for the /v1 benchmark: a chat completion, or ``STREAM_BODY`` when asked to stream."""
    # The stream is longer than an nginx string may be (4 KB): it is served from a file.
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stream.sse").write_text(STREAM_BODY)
    body = _LLM_MOCK.format(port=port, back_port=free_port(), completion=CHAT_COMPLETION, folder=folder)
    service = _nginx("llm-mock-upstream", folder, workers=workers, body=body)
    service.start()
    wait_until("the mock upstream starts", lambda: http_status(f"http://127.0.0.1:{port}/") == 200, timeout=15)
    return service


def nginx_proxy(folder: Path, port: int, upstream_port: int, *, workers: int = 2) -> Service:
    body = _PROXY.format(port=port, upstream_port=upstream_port)
    return _nginx("nginx", folder, workers=workers, body=body)


def nginx_version() -> str:
    return command_output([nginx_path(), "-v"]).removeprefix("nginx version: ")
