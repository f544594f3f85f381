"""Deterministic text: token counting, truncation, chunking, filler and pseudo-embeddings.

Token counting is an approximation, the same on every call and machine: a token is a run of
word characters (``\\w+``) or one punctuation character (``[^\\w\\s]``); whitespace is free.
"Hello, world!" is 4 tokens. A chat prompt costs the tokens of every message's text (content,
name, tool call names and arguments) plus 3 per message, plus 3 to prime the reply; tool
definitions are not counted. A gateway that estimates with tiktoken will differ slightly, which
is exactly the difference between a reported and an estimated count.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
import re
import struct
from collections.abc import Sequence
from typing import Any

from demo_upstreams.mock_llm.knobs import Knobs

TOKEN_PATTERN = re.compile(r"\w+|[^\w\s]")
TOKENS_PER_MESSAGE = 3
TOKENS_TO_PRIME_REPLY = 3
_WORD_PIECE = re.compile(r"\s*\S+")
_FILLER_TEXT = (
    "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore "
    "magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo consequat"
)
_FILLER_WORDS = tuple(_FILLER_TEXT.split())


def count_tokens(text: str) -> int:
    return sum(1 for _ in TOKEN_PATTERN.finditer(text))


def truncate_to_tokens(text: str, limit: int | None) -> tuple[str, int, bool]:
    """``text`` cut right after its ``limit``-th token: (text, its token count, whether it was cut).

    ``None`` means no limit.
    """
    end = 0
    count = 0
    for match in TOKEN_PATTERN.finditer(text):
        if limit is not None and count == limit:
            return text[:end], count, True
        count += 1
        end = match.end()
    return text, count, False


def filler(tokens: int) -> str:
    """A deterministic lorem-ipsum text of exactly ``tokens`` tokens."""
    return " ".join(_FILLER_WORDS[index % len(_FILLER_WORDS)] for index in range(tokens))


def split_text(text: str, knobs: Knobs) -> list[str]:
    """The stream chunks of ``text``: never empty strings, and joined they give ``text`` back.

    ``split_at`` offsets win over ``chunk_size``, which wins over ``chunks``; with none of them,
    each chunk is one word with the whitespace before it.
    """
    if not text:
        return []
    if knobs.split_at:
        bounds = [0, *(offset for offset in knobs.split_at if offset < len(text)), len(text)]
        return [text[start:end] for start, end in itertools.pairwise(bounds)]
    if knobs.chunk_size:
        size = knobs.chunk_size
        return [text[start : start + size] for start in range(0, len(text), size)]
    if knobs.chunks:
        count = min(knobs.chunks, len(text))
        bounds = [len(text) * index // count for index in range(count + 1)]
        return [text[start:end] for start, end in itertools.pairwise(bounds)]
    pieces = _WORD_PIECE.findall(text)
    trailing = text[sum(len(piece) for piece in pieces) :]
    if not pieces:
        return [trailing]
    pieces[-1] += trailing
    return pieces


def content_text(content: object) -> str:
    """The text of a message's ``content``: a string, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return "".join(part for part in parts if isinstance(part, str))
    return ""


def message_tokens(message: dict[str, Any]) -> int:
    tokens = TOKENS_PER_MESSAGE + count_tokens(content_text(message.get("content")))
    if isinstance(message.get("name"), str):
        tokens += count_tokens(message["name"])
    for call in message.get("tool_calls") or ():
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            tokens += count_tokens(str(function.get("name", ""))) + count_tokens(str(function.get("arguments", "")))
    return tokens


def chat_prompt_tokens(messages: Sequence[dict[str, Any]]) -> int:
    return sum(message_tokens(message) for message in messages) + TOKENS_TO_PRIME_REPLY


def pseudo_embedding(model: str, item: str | Sequence[int], dimensions: int) -> tuple[float, ...]:
    """A unit vector derived from a hash of the model and the input: equal inputs give equal
    vectors, different inputs unrelated ones. Components are float32 values, so the ``float``
    and ``base64`` encodings carry exactly the same numbers."""
    key = item if isinstance(item, str) else ",".join(str(token) for token in item)
    digest = hashlib.shake_256(f"{model}\0{key}".encode()).digest(4 * dimensions)
    raw = struct.unpack(f"<{dimensions}I", digest)
    centred = [value / 2**31 - 1.0 for value in raw]
    norm = math.sqrt(sum(value * value for value in centred)) or 1.0
    packed = struct.pack(f"<{dimensions}f", *(value / norm for value in centred))
    return struct.unpack(f"<{dimensions}f", packed)


def embedding_base64(vector: Sequence[float]) -> str:
    """OpenAI's ``encoding_format: "base64"``: little-endian float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
