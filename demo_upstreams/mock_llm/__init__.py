"""demo-llm: an OpenAI-compatible mock model server, the upstream of the demo model product.

Run it with ``python -m demo_upstreams.mock_llm --host 127.0.0.1 --port 9102``, or build it in
process with ``create_app(MockLLMConfig(...))``.

Endpoints: ``GET /v1/models`` (and ``/v1/models/{id}``), ``POST /v1/chat/completions``,
``POST /v1/completions``, ``POST /v1/embeddings``, ``GET /healthz``. Every answer is
deterministic except ids and timestamps; errors are OpenAI error objects. Where to look:

- ``chat``: replies, streaming (``stream_options.include_usage``), ``n``, ``max_tokens``;
- ``tool_calls``: when a chat request gets a tool call, and with which arguments;
- ``completions`` and ``embeddings``: the other two endpoints;
- ``knobs``: the ``x-mock-*`` headers and the body's ``mock`` object, which make the mock
  fail, wait, chunk, drop usage, truncate the stream or say a fixed text;
- ``text``: how tokens are counted (words and punctuation) and text is split into chunks.
"""

from __future__ import annotations

from demo_upstreams.mock_llm.app import PRODUCT, create_app
from demo_upstreams.mock_llm.knobs import Knobs, parse_knobs
from demo_upstreams.mock_llm.plumbing import MockLLMConfig

DEFAULT_PORT = 9102

__all__ = ["DEFAULT_PORT", "PRODUCT", "Knobs", "MockLLMConfig", "create_app", "parse_knobs"]
