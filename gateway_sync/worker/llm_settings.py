"""Settings of the /v1 path, read from the environment like the worker's own (settings.py),
with the same rule: a bad value stops the worker at start with a message naming it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from gateway_sync.worker.settings import WorkerSettingsError

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
        env = os.environ if environ is None else environ
        keepalive = _number(env, "GATEWAY_LLM_KEEPALIVE_S", DEFAULT_KEEPALIVE_S)
        if not 0.05 <= keepalive <= 3600:
            raise WorkerSettingsError(f"GATEWAY_LLM_KEEPALIVE_S={keepalive!r}: use 0.05 to 3600 seconds")
        cap = _positive_int(env, "GATEWAY_LLM_RESERVE_MAX_TOKENS", DEFAULT_RESERVE_MAX_TOKENS)
        topup = _positive_int(env, "GATEWAY_LLM_STREAM_TOPUP_TOKENS", DEFAULT_STREAM_TOPUP_TOKENS)
        return cls(keepalive_s=keepalive, reserve_max_tokens=cap, stream_topup_tokens=topup)


def _positive_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = _number(env, name, default)
    if value < 1 or value != int(value):
        raise WorkerSettingsError(f"{name}={value!r}: use a positive integer")
    return int(value)


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise WorkerSettingsError(f"{name}={raw!r} is not a number") from None
