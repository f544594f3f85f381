"""Guardrails on SSE streams (guard.py has the policies, the scanning and the whole-body
checks): ``StreamGuard`` holds back a sliding window of text per choice and per tool call,
so a pattern split across chunks is still caught, and releases what can no longer match."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from gateway_sync.contract.schema import GuardrailPolicy, GuardrailRule
from gateway_sync.guardrail_rules import Finding, evaluate, redact
from gateway_sync.worker.guard import (
    CONTEXT_CHARS,
    RELEASE_STEP,
    Chunk,
    Endpoint,
    StreamStep,
    _Actions,
    _block_message,
)

_TEMPLATE_KEYS = ("id", "object", "created", "model", "system_fingerprint")


class _Args(NamedTuple):
    """The key under which a tool call's arguments are held: (choice index, call index)."""

    choice: Any
    call: Any


class StreamGuard:
    """Checks the text of an SSE response chunk by chunk (parsed chunk dicts).

    Per choice index it holds the text not yet released. Once more than ``window``
    characters are held, the rules run on them (after ``CONTEXT_CHARS`` of released text)
    and everything but the last ``window`` characters is decided: a finding that starts
    there blocks the stream, or is redacted and released whole; the rest is released. A
    chunk that carries no text for a choice (finish_reason, tool call deltas, role)
    releases that choice's held text first, as a chunk of its own just before it; a chunk
    with no choices (usage) releases every choice's text first. Log probabilities are
    dropped from the choices whose text is held.

    Tool call arguments (``delta.tool_calls[j].function.arguments``, chat only) are held
    and checked the same way, per (choice index, tool call index): a fragment's arguments
    are replaced by what may be released (a tool call left saying nothing is dropped from
    the delta; its first fragment, with its id and name, always passes). A chunk of a
    choice that does not go on with a tool call's arguments (another call, text, the
    finish_reason) releases them first, as a chunk of their own just before it.
    """

    def __init__(
        self, rules: Sequence[GuardrailRule], window: int, endpoint: Endpoint, policies: Sequence[GuardrailPolicy]
    ) -> None:
        self._rules = rules
        self.window = window
        self._endpoint = endpoint
        self._policies = policies
        # Text by choice index; tool call arguments by _Args(choice index, call index).
        self._held: dict[Any, str] = {}
        self._holds_arguments = False
        self._context: dict[Any, str] = {}
        self._template: Chunk = {}
        self._actions = _Actions()
        self._message = ""

    def process(self, chunk: Chunk) -> StreamStep:
        """The chunks to send for ``chunk`` (the chunk itself, rewritten, may be held)."""
        if not self._rules:
            return StreamStep([chunk])
        if self._message:
            return self._step([])
        self._template = {key: chunk[key] for key in _TEMPLATE_KEYS if key in chunk}
        choices = chunk.get("choices")
        if not isinstance(choices, list) or not choices:
            emit = self._release_all()
            return self._step([*emit, chunk] if emit is not None else [])
        emit = []
        kept: list[Any] = []
        for choice in choices:
            if not isinstance(choice, dict):
                kept.append(choice)
                continue
            index = choice.get("index", 0)
            text = self._text_of(choice)
            calls = self._arguments_of(choice)
            ends = choice.get("finish_reason") is not None
            released = ""
            if text is None:
                held = self._release(index, "", final=True)
                if held is None:
                    return self._step([])
                if held:
                    emit.append(self._text_chunk(index, held))
            # Arguments held for this choice's tool calls that this chunk does not go on
            # with are released first, as chunks of their own.
            pending = self._held if self._holds_arguments else ()
            for key in [k for k in pending if isinstance(k, _Args) and k.choice == index and k.call not in calls]:
                held = self._release(key, "", final=True)
                if held is None:
                    return self._step([])
                if held:
                    emit.append(self._arguments_chunk(key, held))
            if text is None and not calls:
                kept.append(choice)
                continue
            rewritten = choice
            if text is not None:
                released_text = self._release(index, text, final=ends)
                if released_text is None:
                    return self._step([])
                released = released_text
                rewritten = self._with_text(choice, released)
            if calls:
                with_arguments = self._with_arguments(rewritten, index, calls, final=ends)
                if with_arguments is None:
                    return self._step([])
                rewritten = with_arguments
            if released or ends or self._carries_more(rewritten):
                kept.append(rewritten)
        # A chunk whose text is all held is dropped, unless it carries usage.
        if kept or chunk.get("usage") is not None:
            emit.append({**chunk, "choices": kept})
        return self._step(emit)

    def finish(self) -> StreamStep:
        """Release the text still held (checked one last time), one chunk per choice
        modelled on the last chunk seen; the proxy sends its terminal chunks after them."""
        if not self._rules or self._message:
            return self._step([])
        emit = self._release_all()
        return self._step(emit if emit is not None else [])

    def _step(self, emit: list[Chunk]) -> StreamStep:
        return StreamStep(emit, bool(self._message), self._message, list(self._actions.labels))

    def _release_all(self) -> list[Chunk] | None:
        emit = []
        for index in list(self._held):
            released = self._release(index, "", final=True)
            if released is None:
                return None
            if released:
                emit.append(
                    self._arguments_chunk(index, released)
                    if isinstance(index, _Args)
                    else self._text_chunk(index, released)
                )
        return emit

    def _release(self, index: Any, text: str, *, final: bool) -> str | None:
        """The text of choice ``index`` that may be sent now, redacted; None if blocked."""
        held = self._held.get(index, "") + text
        if not held or (not final and len(held) < self.window + RELEASE_STEP):
            self._held[index] = held
            return ""
        context = self._context.get(index, "")
        whole = context + held
        base = len(context)
        cut = len(whole) if final else len(whole) - self.window
        verdict = evaluate(self._rules, whole, direction="response")
        decided: list[Finding] = []
        # Sorted by start: a redaction that runs past the cut moves the cut, and so may
        # decide a later finding that overlaps it.
        for finding in verdict.findings:
            if finding.end <= base or finding.start >= cut:
                continue
            decided.append(finding)
            if finding.action == "block":
                self._actions.add(decided)
                self._message = _block_message("response", finding.kind, self._policies, "response")
                return None
            if finding.action == "redact":
                cut = max(cut, finding.end)
        self._actions.add(decided)
        spans = [(max(f.start, base) - base, f.end - base, f.kind) for f in decided if f.action == "redact"]
        released = redact(whole[base:cut], spans) if spans else whole[base:cut]
        self._held[index] = whole[cut:]
        self._context[index] = whole[max(0, cut - CONTEXT_CHARS) : cut]
        return released

    def _text_of(self, choice: dict[str, Any]) -> str | None:
        if self._endpoint == "completions":
            text = choice.get("text")
        else:
            delta = choice.get("delta")
            text = delta.get("content") if isinstance(delta, dict) else None
        return text if isinstance(text, str) else None

    def _arguments_of(self, choice: dict[str, Any]) -> dict[Any, str]:
        """The argument fragments of a chat choice's tool call deltas, by tool call index."""
        if self._endpoint != "chat":
            return {}
        delta = choice.get("delta")
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not isinstance(calls, list):
            return {}
        found: dict[Any, str] = {}
        for position, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                found[call.get("index", position)] = arguments
        return found

    def _with_arguments(
        self, choice: dict[str, Any], index: Any, calls: dict[Any, str], *, final: bool
    ) -> dict[str, Any] | None:
        """``choice`` with each tool call's arguments replaced by what may be sent now (a
        tool call left with nothing to say is dropped); None if blocked."""
        kept: list[Any] = []
        for position, call in enumerate(choice["delta"]["tool_calls"]):
            function = call.get("function") if isinstance(call, dict) else None
            if not isinstance(function, dict) or not isinstance(function.get("arguments"), str):
                kept.append(call)
                continue
            number = call.get("index", position)
            self._holds_arguments = True
            released = self._release(_Args(index, number), calls[number], final=final)
            if released is None:
                return None
            new_function = {**function, "arguments": released}
            says_more = any(v is not None for k, v in call.items() if k not in ("index", "function")) or any(
                v is not None for k, v in function.items() if k != "arguments"
            )
            if released or says_more:
                kept.append({**call, "function": new_function})
        delta = {key: value for key, value in choice["delta"].items() if key != "tool_calls"}
        if kept:
            delta["tool_calls"] = kept
        new = {**choice, "delta": delta}
        if new.get("logprobs") is not None:
            new["logprobs"] = None
        return new

    def _arguments_chunk(self, key: _Args, arguments: str) -> Chunk:
        call = {"index": key.call, "function": {"arguments": arguments}}
        choice = {"index": key.choice, "delta": {"tool_calls": [call]}, "logprobs": None, "finish_reason": None}
        return {**self._template, "choices": [choice]}

    def _with_text(self, choice: dict[str, Any], text: str) -> dict[str, Any]:
        new = (
            {**choice, "text": text}
            if self._endpoint == "completions"
            else {**choice, "delta": {**choice["delta"], "content": text}}
        )
        if new.get("logprobs") is not None:
            new["logprobs"] = None
        return new

    def _carries_more(self, choice: dict[str, Any]) -> bool:
        """True when a choice says something besides its text (a role, a refusal...)."""
        if self._endpoint == "completions":
            return False
        delta = choice["delta"]
        return any(value is not None for key, value in delta.items() if key != "content")

    def _text_chunk(self, index: Any, text: str) -> Chunk:
        if self._endpoint == "completions":
            choice: dict[str, Any] = {"index": index, "text": text, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": index, "delta": {"content": text}, "logprobs": None, "finish_reason": None}
        return {**self._template, "choices": [choice]}
