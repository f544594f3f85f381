"""A small, safe subset of Go's text/template, the language of Higress REST-to-MCP templates.

Supported, and nothing else:
- ``{{.a.b.c}}`` (spaces allowed inside the braces): the value at that path. Path segments are
  ``[A-Za-z0-9_-]+``; a numeric segment indexes a list. ``{{.}}`` is the whole value.
- Go's trim markers: ``{{- `` drops the whitespace before the action, `` -}}`` the whitespace
  after it.

Functions, pipelines, variables, ``range``, ``if``, ``with`` and comments are refused when the
template is parsed, with the offending action quoted, so a template either renders exactly as
written or is rejected up front. Nothing is evaluated: an action is only ever a field lookup.

A missing field renders as the empty string (as Higress's gjson templates do); strings render
as themselves, ``null`` as the empty string, booleans as ``true``/``false``, other values as
compact JSON.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marketplace.specs.errors import SpecError

__all__ = [
    "MISSING",
    "Expr",
    "Segment",
    "lookup_path",
    "parse_template",
    "render_template",
    "string_contexts",
    "to_text",
]

_ACTION = re.compile(r"\{\{(-\s)?\s*(.*?)\s*(\s-)?\}\}", re.DOTALL)
_FIELD = re.compile(r"\.(?:[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*)?")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""What `lookup_path` returns for a path that leads nowhere."""


@dataclass(frozen=True, slots=True)
class Expr:
    """A field reference: ``path`` is ``("args", "city")`` for ``{{.args.city}}``, ``()`` for ``{{.}}``."""

    path: tuple[str, ...]
    source: str

    @property
    def dotted(self) -> str:
        return "." + ".".join(self.path)


Segment = str | Expr


@functools.lru_cache(maxsize=2048)
def _parse(text: str) -> tuple[Segment, ...] | str:
    """The segments of ``text``, or a message saying what is not supported (cached)."""
    segments: list[Segment] = []
    position = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        literal = text[position : match.start()]
        if trim_next:
            literal = literal.lstrip()
        if match.group(1):
            literal = literal.rstrip()
        if "{{" in literal:
            return f"'{{{{' at character {position + literal.index('{{') + 1} is never closed with '}}}}'"
        if literal:
            segments.append(literal)
        inner = match.group(2)
        if not _FIELD.fullmatch(inner):
            return (
                f"unsupported template action {match.group(0)!r} at character {match.start() + 1}: only field "
                "references such as {{.args.name}} are supported (no functions, pipelines, range, if or with)"
            )
        segments.append(Expr(tuple(part for part in inner.split(".") if part), match.group(0)))
        trim_next = bool(match.group(3))
        position = match.end()
    literal = text[position:]
    if trim_next:
        literal = literal.lstrip()
    if "{{" in literal:
        return f"'{{{{' at character {position + literal.index('{{') + 1} is never closed with '}}}}'"
    if literal:
        segments.append(literal)
    return tuple(segments)


def parse_template(text: str, *, where: str) -> tuple[Segment, ...]:
    """Split ``text`` into literal strings and `Expr` references; SpecError naming ``where``."""
    parsed = _parse(text)
    if isinstance(parsed, str):
        raise SpecError(f"{where}: {parsed}.", field=where)
    return parsed


def lookup_path(data: Any, path: tuple[str, ...]) -> Any:
    """Follow ``path`` through dicts (by key) and lists (by index); MISSING if it leads nowhere."""
    node = data
    for part in path:
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def to_text(value: Any) -> str:
    """How a value is written into text (URLs, headers, response templates)."""
    if value is MISSING or value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def render_template(segments: tuple[Segment, ...], value_of: Callable[[Expr, int], str]) -> str:
    """Concatenate literals and ``value_of(expr, index_of_expr)`` for each reference."""
    out: list[str] = []
    index = 0
    for segment in segments:
        if isinstance(segment, Expr):
            out.append(value_of(segment, index))
            index += 1
        else:
            out.append(segment)
    return "".join(out)


def string_contexts(segments: tuple[Segment, ...]) -> list[bool]:
    """For each `Expr`, whether it sits inside a JSON string literal of the surrounding text.

    Used to render JSON body templates safely: inside a string a value is inserted escaped,
    outside as a JSON value, so an argument can never break out of its place in the document.
    """
    contexts: list[bool] = []
    in_string = False
    escaped = False
    for segment in segments:
        if isinstance(segment, Expr):
            contexts.append(in_string)
            continue
        for ch in segment:
            if escaped:
                escaped = False
            elif ch == "\\" and in_string:
                escaped = True
            elif ch == '"':
                in_string = not in_string
    return contexts
