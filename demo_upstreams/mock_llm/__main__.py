"""``python -m demo_upstreams.mock_llm [--host H] [--port 9102] [--chat-model M ...]
[--embedding-model M ...] [--embedding-dimensions N] [--api-key KEY]``"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from aiohttp import web

from demo_upstreams import _cli
from demo_upstreams.mock_llm import DEFAULT_PORT, PRODUCT, MockLLMConfig, create_app


def _build(args: argparse.Namespace) -> web.Application:
    defaults = MockLLMConfig()
    config = MockLLMConfig(
        chat_models=tuple(args.chat_model or defaults.chat_models),
        embedding_models=tuple(args.embedding_model or defaults.embedding_models),
        embedding_dimensions=args.embedding_dimensions,
        api_key=args.api_key or None,
    )
    return create_app(config)


def main(argv: Sequence[str] | None = None) -> None:
    parser = _cli.parser_for(
        "python -m demo_upstreams.mock_llm",
        "demo-llm: an OpenAI-compatible mock model server.",
        default_port=DEFAULT_PORT,
    )
    parser.add_argument(
        "--chat-model", action="append", metavar="NAME", help="a chat model to serve (repeatable; default demo-chat)"
    )
    parser.add_argument(
        "--embedding-model",
        action="append",
        metavar="NAME",
        help="an embedding model to serve (repeatable; default demo-embed)",
    )
    parser.add_argument(
        "--embedding-dimensions",
        type=int,
        default=MockLLMConfig().embedding_dimensions,
        help="default embedding size (default: %(default)s)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("DEMO_LLM_API_KEY", ""),
        help="require this bearer key on /v1 (default: $DEMO_LLM_API_KEY, else any key is accepted)",
    )
    _cli.main_for(_build, parser, name=PRODUCT, argv=argv)


if __name__ == "__main__":
    main()
