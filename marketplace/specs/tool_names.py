"""Tool names that every LLM provider accepts: 1 to 64 characters of ``[A-Za-z0-9_-]``.

MCP itself allows more (SEP-986: up to 128 characters, dots included), but the gateway hands
tool names to LLM providers, which reject dots and long names. So names derived from OpenAPI
documents or upstream servers are sanitized here, and names a provider typed are validated.

Sanitizing is deterministic (the same input always gives the same name), and when a name must
be shortened a hash of the whole original is appended, so two long names that share a prefix
stay distinct.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from marketplace.specs.errors import SpecError

__all__ = [
    "MAX_TOOL_NAME_LENGTH",
    "MCP_TOOL_NAME_MAX_LENGTH",
    "mcp_tool_name_problem",
    "sanitize_tool_name",
    "tool_name_problem",
    "unique_tool_names",
    "validate_tool_name",
]

MAX_TOOL_NAME_LENGTH = 64
MCP_TOOL_NAME_MAX_LENGTH = 128
_LEGAL = re.compile(r"[A-Za-z0-9_-]+")
_ILLEGAL_RUN = re.compile(r"[^A-Za-z0-9_-]+")
_SEPARATOR_RUN = re.compile(r"[_-]{2,}")
_MCP_LEGAL_CHAR = re.compile(r"[A-Za-z0-9_.-]")
_HASH_LEN = 8
_FALLBACK_PREFIX = "tool"


def _short_hash(raw: str, length: int = _HASH_LEN) -> str:
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:length]


def _fold(raw: str) -> str:
    """Decompose accents (``é`` -> ``e``) and drop what has no ASCII form."""
    decomposed = unicodedata.normalize("NFKD", raw)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def sanitize_tool_name(raw: str, *, max_len: int = MAX_TOOL_NAME_LENGTH) -> str:
    """Turn any string into a legal tool name of at most ``max_len`` characters.

    Steps: fold accents to ASCII; replace every run of other characters (spaces, dots, slashes,
    braces, non-Latin scripts) by ``_``; collapse runs of ``_``/``-`` into the first of them;
    trim separators at both ends. A legal name of legal length is returned unchanged.

    When the result is too long it is cut and ``_<8 hex digits of sha256(raw)>`` appended; when
    nothing legal remains (``"天气"``) the name is ``tool_<hash>``. Both hash the *original*, so
    distinct inputs that lose the same characters still get distinct names.
    """
    if max_len < _HASH_LEN + 2:
        raise ValueError(f"max_len must be at least {_HASH_LEN + 2}")
    if _LEGAL.fullmatch(raw) and len(raw) <= max_len:
        return raw
    name = _ILLEGAL_RUN.sub("_", _fold(raw))
    name = _SEPARATOR_RUN.sub(lambda m: m.group(0)[0], name).strip("_-")
    if not name:
        return f"{_FALLBACK_PREFIX}_{_short_hash(raw)}"
    if len(name) <= max_len:
        return name
    head = name[: max_len - _HASH_LEN - 1].rstrip("_-")
    return f"{head}_{_short_hash(raw)}"


def unique_tool_names(raws: Iterable[str], *, max_len: int = MAX_TOOL_NAME_LENGTH) -> list[str]:
    """Sanitize every name and resolve collisions deterministically, keeping the input order.

    The first name of a colliding group keeps its sanitized form; each later one gets
    ``_<6 hex digits of sha256(raw)>`` (cut to fit), so adding a tool does not rename others
    that were already unique. Identical raw names (or the rare hash clash) then get a counter:
    ``_2``, ``_3``... The result has no duplicates, and every name passes `validate_tool_name`.
    """
    raws = list(raws)
    bases = [sanitize_tool_name(raw, max_len=max_len) for raw in raws]
    taken: set[str] = set()
    seen_base: set[str] = set()
    result: list[str] = []
    for raw, base in zip(raws, bases, strict=True):
        candidate = base
        if base in seen_base or base in taken:
            candidate = _with_suffix(base, _short_hash(raw, 6), max_len)
        counter = 2
        while candidate in taken:
            candidate = _with_suffix(base, str(counter), max_len)
            counter += 1
        seen_base.add(base)
        taken.add(candidate)
        result.append(candidate)
    return result


def _with_suffix(base: str, suffix: str, max_len: int) -> str:
    head = base[: max_len - len(suffix) - 1].rstrip("_-") or _FALLBACK_PREFIX
    return f"{head}_{suffix}"


def _describe_chars(chars: Iterable[str]) -> str:
    shown = []
    for ch in dict.fromkeys(chars):
        if ch == " ":
            shown.append("' ' (space)")
        elif ch.isprintable():
            shown.append(repr(ch))
        else:
            shown.append(f"U+{ord(ch):04X}")
    return ", ".join(shown)


def tool_name_problem(name: object, *, max_len: int = MAX_TOOL_NAME_LENGTH, subject: str = "tool name") -> str | None:
    """What is wrong with ``name`` as a gateway tool (or argument) name, or None if nothing."""
    if not isinstance(name, str):
        return f"the {subject} must be a string, not {type(name).__name__}"
    if not name:
        return f"the {subject} is empty"
    if len(name) > max_len:
        return f"the {subject} {name[:20]!r}... is {len(name)} characters long; the limit is {max_len}"
    bad = [ch for ch in name if not _LEGAL.fullmatch(ch)]
    if bad:
        return (
            f"the {subject} {name!r} contains characters that are not allowed: {_describe_chars(bad)}; "
            "use only letters A-Z and a-z, digits, '_' and '-'"
        )
    return None


def validate_tool_name(name: object, *, max_len: int = MAX_TOOL_NAME_LENGTH, field: str | None = "name") -> str:
    """Return ``name`` if it is a legal gateway tool name, else raise SpecError saying why."""
    problem = tool_name_problem(name, max_len=max_len)
    if problem is None and isinstance(name, str):
        return name
    problem = problem or "the tool name is not a string"
    raise SpecError(problem[0].upper() + problem[1:] + ".", field=field)


def mcp_tool_name_problem(name: object) -> str | None:
    """What is wrong with ``name`` under the MCP specification's own rule (SEP-986), or None.

    That rule, 1 to 128 characters of ``[A-Za-z0-9_.-]``, is what upstream MCP servers are held
    to; the gateway maps such names onto the stricter LLM-facing form itself.
    """
    if not isinstance(name, str):
        return f"the tool name must be a string, not {type(name).__name__}"
    if not name:
        return "the tool name is empty"
    if len(name) > MCP_TOOL_NAME_MAX_LENGTH:
        return f"{name[:20]!r}... is {len(name)} characters long; MCP allows {MCP_TOOL_NAME_MAX_LENGTH}"
    bad = [ch for ch in name if not _MCP_LEGAL_CHAR.fullmatch(ch)]
    if bad:
        return f"{name!r} contains characters MCP does not allow in tool names: {_describe_chars(bad)}"
    return None
