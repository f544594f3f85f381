"""Settings of the /v1 path, read from the environment like the worker's own (settings.py),
with the same rule: a bad value stops the worker at start with a message naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway_sync.worker.settings import Environment

DEFAULT_KEEPALIVE_S = 15.0
DEFAULT_RESERVE_MAX_TOKENS = 4096
DEFAULT_STREAM_TOPUP_TOKENS = 256


@dataclass(frozen=True, kw_only=True)
class LlmSettings:
    # GATEWAY_LLM_KEEPALIVE_S: a ": keep-alive" comment after this much upstream silence.
    keepalive_s: float = DEFAULT_KEEPALIVE_S
    # GATEWAY_LLM_RESERVE_MAX_TOKENS: completion tokens reserved when a request names no max_tokens.
    reserve_max_tokens: int = DEFAULT_RESERVE_MAX_TOKENS
    # GATEWAY_LLM_STREAM_TOPUP_TOKENS: the further reservation of a stream whose route cuts
    # streams on budget, each time it reaches what it has reserved.
    stream_topup_tokens: int = DEFAULT_STREAM_TOPUP_TOKENS

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LlmSettings:
        env = Environment(os.environ if environ is None else environ)
        return cls(
            keepalive_s=env.interval("GATEWAY_LLM_KEEPALIVE_S", DEFAULT_KEEPALIVE_S),
            reserve_max_tokens=env.positive_int("GATEWAY_LLM_RESERVE_MAX_TOKENS", DEFAULT_RESERVE_MAX_TOKENS),
            stream_topup_tokens=env.positive_int("GATEWAY_LLM_STREAM_TOPUP_TOKENS", DEFAULT_STREAM_TOPUP_TOKENS),
        )
