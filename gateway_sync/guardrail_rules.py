"""Guardrail detection: what each rule kind finds in a text, and what its action does.

Pure Python (it imports no Django), so the gateway workers can run exactly the detection
that the admin console's "test this policy" box shows. The rules it evaluates are anything
shaped like ``gateway_sync.contract.schema.GuardrailRule``.

Detectors return spans ``(start, end)`` of the text. ``evaluate`` applies a policy's rules
in one direction (request or response):

1. every rule that applies to the direction reports its findings;
2. if any finding's action is ``block``, the verdict is blocked and the text is unchanged;
3. otherwise findings whose action is ``redact`` are replaced by a label (``[EMAIL]``...);
4. ``log`` findings change nothing: they are reported only.

Every pattern here is linear or bounded in the length of the text; patterns written by
admins are checked by ``pattern_problem`` before they are saved.
"""

from __future__ import annotations

import functools
import importlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, get_args

from gateway_sync.contract.schema import GuardrailAction, GuardrailKind

Direction = Literal["request", "response"]
Span = tuple[int, int]

KINDS: tuple[str, ...] = get_args(GuardrailKind)
ACTIONS: tuple[str, ...] = get_args(GuardrailAction)
MAX_PATTERN_CHARS = 500

REDACTION_LABELS = {
    "pii_email": "[EMAIL]",
    "pii_phone": "[PHONE]",
    "pii_credit_card": "[CARD]",
    "pii_iban": "[IBAN]",
    "pii_custom": "[ID]",
}
DEFAULT_LABEL = "[REDACTED]"


class RuleLike(Protocol):
    """The fields of a rule that detection reads (the contract's GuardrailRule has them)."""

    @property
    def kind(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def on_request(self) -> bool: ...
    @property
    def on_response(self) -> bool: ...
    @property
    def words(self) -> Sequence[str]: ...
    @property
    def pattern(self) -> str: ...
    @property
    def max_chars(self) -> int | None: ...


@dataclass(frozen=True)
class Finding:
    kind: str
    action: str
    start: int
    end: int
    text: str


@dataclass(frozen=True)
class Verdict:
    blocked: bool
    findings: tuple[Finding, ...]
    # The text to pass on: redacted where a redact rule matched; unchanged when blocked.
    text: str

    @property
    def redacted(self) -> bool:
        return not self.blocked and any(f.action == "redact" for f in self.findings)


# --- Checksums -------------------------------------------------------------------------


def luhn_valid(number: str) -> bool:
    """True when ``number`` (digits, optionally with spaces or dashes) passes the Luhn
    check that payment card numbers carry."""
    digits = [int(c) for c in number if c.isdigit()]
    if len(digits) < 2 or len(digits) != sum(1 for c in number if c not in " -"):
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def iban_valid(text: str) -> bool:
    """True when ``text`` (spaces allowed) is an IBAN whose ISO 13616 mod-97 check holds."""
    compact = text.replace(" ", "").upper()
    if not _IBAN_SHAPE.fullmatch(compact):
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


# --- Detectors -------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![\w-])"
)
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d[\d .-]{5,18}\d(?!\w)")
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")
_IPV4 = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d])")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}")


def find_emails(text: str) -> list[Span]:
    return [m.span() for m in _EMAIL.finditer(text)]


def _looks_like_phone(candidate: str) -> bool:
    digits = sum(c.isdigit() for c in candidate)
    if candidate.startswith("+"):
        return 8 <= digits <= 15
    if _DATE.fullmatch(candidate) or _IPV4.fullmatch(candidate):
        return False
    if candidate.isdigit():
        # A bare run of digits is a phone number only at a national number's length.
        return digits in (10, 11)
    return 8 <= digits <= 15


def find_phones(text: str) -> list[Span]:
    """Phone numbers: international (+44 20 7946 0958), or national with separators
    ((555) 123-4567, 020 7946 0958), or a bare 10 or 11 digits. Dates and IPv4
    addresses are not phone numbers."""
    return [m.span() for m in _PHONE.finditer(text) if _looks_like_phone(m.group())]


def find_credit_cards(text: str) -> list[Span]:
    """Payment card numbers: 13 to 19 digits (spaces or dashes between them allowed),
    starting as the card networks do (2 to 6), that pass the Luhn check."""
    return [m.span() for m in _CARD.finditer(text) if m.group()[0] in "23456" and luhn_valid(m.group())]


def find_ibans(text: str) -> list[Span]:
    """IBANs in upper case, grouped by spaces or not, whose mod-97 check holds. The
    longest valid reading wins, so text right after an IBAN is not swallowed."""
    spans: list[Span] = []
    for match in _IBAN.finditer(text):
        # Offsets of the candidate's non-space characters, to map a prefix back to text.
        offsets = [match.start() + i for i, c in enumerate(match.group()) if c != " "]
        compact = match.group().replace(" ", "")
        for length in range(len(compact), 14, -1):
            if iban_valid(compact[:length]):
                spans.append((match.start(), offsets[length - 1] + 1))
                break
    return spans


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def find_pattern(text: str, pattern: str) -> list[Span]:
    """Non-empty matches of an admin's regular expression (checked by pattern_problem)."""
    return [m.span() for m in _compiled(pattern).finditer(text) if m.end() > m.start()]


@functools.lru_cache(maxsize=256)
def _keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    alternatives = []
    for word in sorted({w.strip() for w in words if w.strip()}, key=len, reverse=True):
        # Whole words only where the word begins or ends with a word character, so that
        # "ass" does not match "class", while "c++" still matches.
        before = r"(?<!\w)" if re.match(r"\w", word) else ""
        after = r"(?!\w)" if re.search(r"\w$", word) else ""
        alternatives.append(before + re.escape(word) + after)
    if not alternatives:
        return None
    return re.compile("|".join(alternatives), re.IGNORECASE)


def find_keywords(text: str, words: Iterable[str]) -> list[Span]:
    """Whole words or phrases of ``words``, in any case."""
    pattern = _keyword_pattern(tuple(words))
    return [] if pattern is None else [m.span() for m in pattern.finditer(text)]


_INJECTION = [
    re.compile(p, re.IGNORECASE | re.MULTILINE)
    for p in (
        # "Ignore all previous instructions", "disregard the system prompt"...
        r"\b(?:ignore|disregard|forget|override|bypass|skip)\b[^.\n]{0,40}?"
        r"\b(?:previous|prior|above|earlier|preceding|all|any|your|the|system|initial)\b[^.\n]{0,20}?"
        r"\b(?:instructions?|prompts?|rules?|directions?|guidelines?|guardrails?|context)\b",
        # "Reveal your system prompt", "print the hidden instructions"...
        r"\b(?:reveal|show|print|repeat|output|leak|tell\s+me)\b[^.\n]{0,30}?"
        r"\b(?:system|hidden|initial|original|secret)\s+(?:prompt|instructions?|message)s?\b",
        # "You are now DAN / in developer mode / unrestricted"...
        r"\byou\s+are\s+now\b[^.\n]{0,40}?\b(?:DAN|unrestricted|unfiltered|jailbroken|developer\s+mode|evil)\b",
        r"\b(?:do\s+anything\s+now|developer\s+mode\s+(?:enabled|on)|jailbr(?:eak|oken))\b",
        # "Pretend you are an AI without restrictions"...
        r"\b(?:pretend|act|behave)\b[^.\n]{0,40}?\b(?:no|without)\s+(?:restrictions|rules|filters|limits|guidelines)\b",
        # Chat-template and role markers smuggled into user text.
        r"<\|(?:im_start|im_end|system|endoftext)\|>|^\s*#{2,}\s*(?:system|instructions?)\b",
        r"\bnew\s+(?:system\s+)?instructions?\s*:",
    )
]


def find_injection(text: str, extra_phrases: Iterable[str] = ()) -> list[Span]:
    """Prompt-injection heuristics: phrases that try to override or reveal the system
    prompt, jailbreak personas and smuggled role markers, plus ``extra_phrases``."""
    spans = [m.span() for pattern in _INJECTION for m in pattern.finditer(text)]
    spans += find_keywords(text, extra_phrases)
    return sorted(spans)


def find_over_limit(text: str, max_chars: int | None) -> list[Span]:
    """The part of the text past ``max_chars`` characters, if any."""
    if max_chars is None or len(text) <= max_chars:
        return []
    return [(max_chars, len(text))]


def detect(rule: RuleLike, text: str) -> list[Span]:
    """The spans of ``text`` that ``rule`` finds."""
    kind = rule.kind
    if kind == "keyword":
        return find_keywords(text, rule.words)
    if kind in ("regex", "pii_custom"):
        return find_pattern(text, rule.pattern) if rule.pattern else []
    if kind == "pii_email":
        return find_emails(text)
    if kind == "pii_phone":
        return find_phones(text)
    if kind == "pii_credit_card":
        return find_credit_cards(text)
    if kind == "pii_iban":
        return find_ibans(text)
    if kind == "prompt_injection":
        return find_injection(text, rule.words)
    if kind == "max_prompt_chars":
        return find_over_limit(text, rule.max_chars)
    raise ValueError(f"unknown guardrail kind {kind!r}")


# --- Actions ---------------------------------------------------------------------------


def redact(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """``text`` with each ``(start, end, kind)`` span replaced by its kind's label;
    overlapping spans are merged and take the label of the one that starts first."""
    merged: list[list[Any]] = []
    for start, end, kind in sorted(spans, key=lambda s: (s[0], -s[1])):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, kind])
    parts: list[str] = []
    position = 0
    for start, end, kind in merged:
        parts += [text[position:start], REDACTION_LABELS.get(kind, DEFAULT_LABEL)]
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _applies(rule: RuleLike, direction: Direction) -> bool:
    return rule.on_request if direction == "request" else rule.on_response


def evaluate(rules: Iterable[RuleLike], text: str, *, direction: Direction) -> Verdict:
    """Run ``rules`` on ``text`` for one direction; see the module's docstring."""
    findings: list[Finding] = []
    for rule in rules:
        if not _applies(rule, direction):
            continue
        # A size limit cannot be redacted: anything but "log" refuses the prompt.
        action = "block" if rule.kind == "max_prompt_chars" and rule.action != "log" else rule.action
        findings += [Finding(rule.kind, action, s, e, text[s:e]) for s, e in detect(rule, text)]
    findings.sort(key=lambda f: (f.start, f.end))
    if any(f.action == "block" for f in findings):
        return Verdict(blocked=True, findings=tuple(findings), text=text)
    redacted = redact(text, ((f.start, f.end, f.kind) for f in findings if f.action == "redact"))
    return Verdict(blocked=False, findings=tuple(findings), text=redacted)


# --- Checking admins' patterns ---------------------------------------------------------

_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
_REPEATS = (_constants.MAX_REPEAT, _constants.MIN_REPEAT)


def _children(op: Any, av: Any) -> list[Any]:
    """The sub-patterns of one parsed node."""
    if op in _REPEATS or op is _constants.POSSESSIVE_REPEAT:
        return [av[2]]
    if op is _constants.SUBPATTERN:
        return [av[3]]
    if op is _constants.BRANCH:
        return list(av[1])
    if op in (_constants.ASSERT, _constants.ASSERT_NOT):
        return [av[1]]
    if op is _constants.ATOMIC_GROUP:
        return [av]
    if op is _constants.GROUPREF_EXISTS:
        return [p for p in av[1:] if p is not None]
    return []


def _repeats_inside(sub: Any) -> list[tuple[int, int]]:
    """(min, max) of every backtracking repeat inside a parsed pattern."""
    found: list[tuple[int, int]] = []
    for op, av in sub:
        if op in _REPEATS:
            found.append((av[0], av[1]))
        if op is not _constants.ATOMIC_GROUP:
            for child in _children(op, av):
                found += _repeats_inside(child)
    return found


def _nested_quantifier(sub: Any) -> bool:
    """True when a repeated group contains a repeat that can match in many ways, such as
    ``(a+)+`` or ``(\\w{1,9})*``: backtracking over them takes exponential time."""
    unbounded = _constants.MAXREPEAT
    for op, av in sub:
        if op in _REPEATS and av[1] > 1:
            outer_unbounded = av[1] == unbounded
            for low, high in _repeats_inside(av[2]):
                if high == unbounded or (outer_unbounded and low != high):
                    return True
        if op is not _constants.ATOMIC_GROUP and any(_nested_quantifier(c) for c in _children(op, av)):
            return True
    return False


def pattern_problem(pattern: str) -> str | None:
    """Why ``pattern`` may not be used in a guardrail, or None when it may: too long, not
    a Python regular expression, able to backtrack catastrophically in a way we can see
    cheaply (nested quantifiers), or matching empty text (it would match everything)."""
    if len(pattern) > MAX_PATTERN_CHARS:
        return f"The pattern is {len(pattern)} characters long; the limit is {MAX_PATTERN_CHARS}."
    try:
        compiled = re.compile(pattern)
        parsed = _parser.parse(pattern)
    except re.error as error:
        where = f" at position {error.pos}" if error.pos is not None else ""
        return f"Not a valid regular expression: {error.msg}{where}."
    except RecursionError:
        return "The pattern is nested too deeply."
    if _nested_quantifier(parsed):
        return (
            "The pattern repeats a group that itself repeats (such as (a+)+), which can take "
            "exponential time on some texts. Rewrite it without the nested quantifier."
        )
    if compiled.fullmatch("") is not None:
        return "The pattern matches empty text, so it would match every message."
    return None
