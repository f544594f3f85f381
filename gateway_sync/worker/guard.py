"""Guardrails on the LLM path (/v1): the snapshot's policies run on what the model is sent
and on what it answers, with exactly the detection of ``gateway_sync.guardrail_rules``
(the one the console's "Test this policy" box shows).

1. ``policies_for`` picks the policies of the product, the route and the caller's plan.
2. ``LlmGuard(policies)`` is cheap to build per request: it only sorts the rules by
   direction (the rule engine caches compiled patterns itself).
3. ``check_request`` / ``check_response`` inspect whole bodies and return a
   ``GuardOutcome``: blocked (with a message that names the policy and the kind of finding,
   never the text found), or a new body with redactions applied.
4. ``stream_guard`` returns a ``StreamGuard`` for SSE responses. It holds back, per choice,
   the last ``window`` characters of text, so a match split across chunks is still whole
   when it is judged; text is released once it can no longer be part of a match. The
   arguments of streamed tool calls are held the same way, per choice and tool call.

The window is the longest match the active response rules can produce, plus a margin for
the look-ahead that ends a match (``LOOKAROUND_MARGIN``): 37 for card numbers (19 digits
and 18 separators), 32 for phone numbers, 64 for IBANs, 100 for email addresses (the
detector is unbounded; longer addresses straddling the window are missed), 96 for the
injection heuristics, the longest word of a keyword rule, and for admins' patterns their
maximum width (``UNBOUNDED_PATTERN_WINDOW`` when unbounded). Never more than
``MAX_WINDOW``. A typical policy (card, email, phone, injection) gives 104 characters:
about 25 tokens of latency before the first text reaches the client.

Held text is checked once ``RELEASE_STEP`` (16) characters past the window have arrived
rather than on every chunk, so a check covers about 16 + 104 + 16 characters.

Per-chunk cost (timeit over a stream of 16,800 characters in 4-character chat
chunks, one policy of card + email + phone + IBAN redaction and injection logging on
responses; CPython 3.11.7 on the development machine): 14 µs per chunk (47 µs when every
chunk was checked, before RELEASE_STEP), 0.3 µs as a pass-through with no response rules.
Building an LlmGuard: 1.7 µs. ``check_request`` on a 2,000-character chat prompt: 0.55 ms.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from gateway_sync.contract.schema import GuardrailPolicy, GuardrailRule, Plan, Product, Route
from gateway_sync.guardrail_rules import Direction, Finding, evaluate
from gateway_sync.worker.state import CompiledSnapshot

if TYPE_CHECKING:
    from gateway_sync.worker.guard_stream import StreamGuard

Endpoint = Literal["chat", "completions", "embeddings"]
Chunk = dict[str, Any]

MAX_ACTIONS = 20
MAX_ACTION_CHARS = 40
# The longest matches of the built-in detectors (their regular expressions' widths, or a
# bound where a detector is unbounded).
KIND_WINDOWS = {"pii_credit_card": 37, "pii_phone": 32, "pii_iban": 64, "pii_email": 100, "prompt_injection": 96}
UNBOUNDED_PATTERN_WINDOW = 128
MAX_WINDOW = 256
LOOKAROUND_MARGIN = 4
# Released text kept in front of the held-back text when it is checked, so that
# look-behinds and word boundaries see what came before.
CONTEXT_CHARS = 16
# Held text is checked once this many characters past the window have arrived, not on
# every chunk (about 4 tokens): a sixth of the checks, for that much more latency.
RELEASE_STEP = 16

_parser: Any = importlib.import_module("re._parser")
_MAXREPEAT: int = importlib.import_module("re._constants").MAXREPEAT


def policies_for(
    snapshot: CompiledSnapshot, product: Product, route: Route | None, plan: Plan | None
) -> tuple[GuardrailPolicy, ...]:
    """The policies attached to the product, then the route, then the plan, each once, in
    the order they are listed. Ids the snapshot does not carry are skipped."""
    found: dict[int, GuardrailPolicy] = {}
    for owner in (product, route, plan):
        if owner is None:
            continue
        for policy_id in owner.guardrail_ids:
            policy = snapshot.guardrails_by_id.get(policy_id)
            if policy is not None and policy_id not in found:
                found[policy_id] = policy
    return tuple(found.values())


@dataclass
class GuardOutcome:
    blocked: bool
    # Why the body was blocked, for an OpenAI error object ("" when it was not).
    message: str
    # A new top-level dict: redacted where a rule redacted (containers are copied where
    # they changed and shared otherwise); the original's contents when blocked.
    body: dict[str, Any]
    # Labels such as "redact:pii_email", for the usage event's guardrail_actions.
    actions: list[str]


@dataclass
class StreamStep:
    # The chunks to send now, in order.
    emit: list[Chunk]
    blocked: bool = False
    message: str = ""
    actions: list[str] = field(default_factory=list)


class _Actions:
    """What the rules did, once per action and kind, at most MAX_ACTIONS labels."""

    def __init__(self) -> None:
        self.labels: list[str] = []

    def add(self, findings: Iterable[Finding]) -> None:
        for finding in findings:
            label = f"{finding.action}:{finding.kind}"[:MAX_ACTION_CHARS]
            if label not in self.labels and len(self.labels) < MAX_ACTIONS:
                self.labels.append(label)


def _block_message(what: str, kind: str, policies: Sequence[GuardrailPolicy], direction: Direction) -> str:
    name = next(
        (
            policy.name
            for policy in policies
            for rule in policy.rules
            if rule.kind == kind
            and rule.action != "log"
            and (rule.on_request if direction == "request" else rule.on_response)
        ),
        "",
    )
    by = f"the guardrail policy {name!r}" if name else "a guardrail policy"
    return f"The {what} was blocked by {by} ({kind.replace('_', ' ')})."


# --- Where the text is in OpenAI bodies ------------------------------------------------

_T = TypeVar("_T")


def _map_list(items: list[_T], fn: Callable[[_T], _T]) -> list[_T]:
    """``items`` itself when ``fn`` returns every item unchanged, else a new list."""
    mapped = [fn(item) for item in items]
    return items if all(a is b for a, b in zip(mapped, items, strict=True)) else mapped


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """A prompt or an embeddings input: a string or a list (strings; token ids pass)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return _map_list(value, lambda item: fn(item) if isinstance(item, str) else item)
    return value


def _map_content(value: Any, fn: Callable[[str], str]) -> Any:
    """A message's content: a string, or parts of which only text parts are read."""
    if isinstance(value, str):
        return fn(value)
    if not isinstance(value, list):
        return value

    def part(item: Any) -> Any:
        if isinstance(item, dict) and item.get("type") == "text" and isinstance(item.get("text"), str):
            text = fn(item["text"])
            return item if text is item["text"] else {**item, "text": text}
        return item

    return _map_list(value, part)


def _map_function(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, dict) and isinstance(value.get("arguments"), str):
        arguments = fn(value["arguments"])
        return value if arguments is value["arguments"] else {**value, "arguments": arguments}
    return value


def _map_message(message: Any, fn: Callable[[str], str]) -> Any:
    """Content, tool calls' and the legacy function call's arguments of one message."""
    if not isinstance(message, dict):
        return message
    new = message
    content = message.get("content")
    mapped = _map_content(content, fn)
    if mapped is not content:
        new = {**new, "content": mapped}
    calls = message.get("tool_calls")
    if isinstance(calls, list):

        def call(item: Any) -> Any:
            if not isinstance(item, dict):
                return item
            function = _map_function(item.get("function"), fn)
            return item if function is item.get("function") else {**item, "function": function}

        mapped_calls = _map_list(calls, call)
        if mapped_calls is not calls:
            new = {**new, "tool_calls": mapped_calls}
    function_call = message.get("function_call")
    mapped_function = _map_function(function_call, fn)
    if mapped_function is not function_call:
        new = {**new, "function_call": mapped_function}
    return new


def _map_request(body: dict[str, Any], endpoint: Endpoint, fn: Callable[[str], str]) -> dict[str, Any]:
    key = {"chat": "messages", "completions": "prompt", "embeddings": "input"}[endpoint]
    value = body.get(key)
    if endpoint == "chat":
        mapped = _map_list(value, lambda m: _map_message(m, fn)) if isinstance(value, list) else value
    else:
        mapped = _map_strings(value, fn)
    return dict(body) if mapped is value else {**body, key: mapped}


def _map_response(body: dict[str, Any], endpoint: Endpoint, fn: Callable[[str], str]) -> dict[str, Any]:
    choices = body.get("choices")
    if endpoint == "embeddings" or not isinstance(choices, list):
        return dict(body)
    key = "message" if endpoint == "chat" else "text"

    def choice(item: Any) -> Any:
        if not isinstance(item, dict):
            return item
        value = item.get(key)
        mapped = _map_message(value, fn) if endpoint == "chat" else _map_strings(value, fn)
        if mapped is value:
            return item
        # Log probabilities spell out the tokens that were redacted.
        return {**item, key: mapped, "logprobs": None} if item.get("logprobs") is not None else {**item, key: mapped}

    mapped_choices = _map_list(choices, choice)
    return dict(body) if mapped_choices is choices else {**body, "choices": mapped_choices}


class _Scan:
    """A text transform that evaluates rules on each text it is given and redacts it;
    after the first block it only records that the body is blocked."""

    def __init__(self, rules: Sequence[GuardrailRule], direction: Direction, actions: _Actions) -> None:
        self.rules = rules
        self.direction = direction
        self.actions = actions
        self.blocked_kind = ""

    def __call__(self, text: str) -> str:
        if self.blocked_kind or not text:
            return text
        verdict = evaluate(self.rules, text, direction=self.direction)
        self.actions.add(verdict.findings)
        if verdict.blocked:
            self.blocked_kind = next(f.kind for f in verdict.findings if f.action == "block")
            return text
        return verdict.text if verdict.redacted else text


# --- The guard -------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _pattern_width(pattern: str) -> int:
    try:
        width: int = _parser.parse(pattern).getwidth()[1]
    except Exception:
        # The console refuses patterns that do not parse; should one arrive, the default.
        return UNBOUNDED_PATTERN_WINDOW
    return UNBOUNDED_PATTERN_WINDOW if width >= _MAXREPEAT else width


def rule_window(rule: GuardrailRule) -> int:
    """The longest text one match of ``rule`` can span (a bound; see the module docstring)."""
    longest_word = max((len(word) for word in rule.words), default=0)
    if rule.kind == "keyword":
        return longest_word
    if rule.kind in ("regex", "pii_custom"):
        return _pattern_width(rule.pattern) if rule.pattern else 0
    if rule.kind == "max_prompt_chars":
        return 0
    return max(KIND_WINDOWS.get(rule.kind, UNBOUNDED_PATTERN_WINDOW), longest_word)


class LlmGuard:
    """The guardrails of one request, built from ``policies_for``'s policies."""

    def __init__(self, policies: Sequence[GuardrailPolicy]) -> None:
        self.policies = tuple(policies)
        rules = [rule for policy in self.policies for rule in policy.rules]
        self._request_rules = tuple(r for r in rules if r.on_request and r.kind != "max_prompt_chars")
        self._size_rules = tuple(r for r in rules if r.on_request and r.kind == "max_prompt_chars")
        # The prompt size limit is for requests only (the console refuses it on responses).
        self._response_rules = tuple(r for r in rules if r.on_response and r.kind != "max_prompt_chars")

    @property
    def inspects_requests(self) -> bool:
        return bool(self._request_rules or self._size_rules)

    @property
    def inspects_responses(self) -> bool:
        return bool(self._response_rules)

    @property
    def window(self) -> int:
        """The characters a stream guard holds back per choice (0: it holds nothing)."""
        if not self._response_rules:
            return 0
        return min(MAX_WINDOW, max(rule_window(rule) for rule in self._response_rules)) + LOOKAROUND_MARGIN

    def check_request(self, body: dict[str, Any], endpoint: Endpoint) -> GuardOutcome:
        """Check what the model will be sent; see GuardOutcome."""
        actions = _Actions()
        if self._size_rules:
            # Checked first, over the whole prompt: a prompt too large is not scanned.
            texts: list[str] = []

            def collect(text: str) -> str:
                texts.append(text)
                return text

            _map_request(body, endpoint, collect)
            verdict = evaluate(self._size_rules, "".join(texts), direction="request")
            actions.add(verdict.findings)
            if verdict.blocked:
                message = _block_message("request", "max_prompt_chars", self.policies, "request")
                return GuardOutcome(True, message, dict(body), actions.labels)
        if not self._request_rules:
            return GuardOutcome(False, "", dict(body), actions.labels)
        scan = _Scan(self._request_rules, "request", actions)
        checked = _map_request(body, endpoint, scan)
        return self._outcome("request", scan, body, checked)

    def check_response(self, body: dict[str, Any], endpoint: Endpoint) -> GuardOutcome:
        """Check a whole (not streamed) response; see GuardOutcome."""
        actions = _Actions()
        if not self._response_rules:
            return GuardOutcome(False, "", dict(body), actions.labels)
        scan = _Scan(self._response_rules, "response", actions)
        checked = _map_response(body, endpoint, scan)
        return self._outcome("response", scan, body, checked)

    def _outcome(
        self, direction: Direction, scan: _Scan, body: dict[str, Any], checked: dict[str, Any]
    ) -> GuardOutcome:
        if scan.blocked_kind:
            message = _block_message(direction, scan.blocked_kind, self.policies, direction)
            return GuardOutcome(True, message, dict(body), scan.actions.labels)
        return GuardOutcome(False, "", checked, scan.actions.labels)

    def stream_guard(self, endpoint: Endpoint) -> StreamGuard:
        # Imported here: the stream guard builds on this module's pieces.
        from gateway_sync.worker.guard_stream import StreamGuard

        return StreamGuard(self._response_rules, self.window, endpoint, self.policies)
