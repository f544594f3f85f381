"""Loading provider documents (JSON or YAML text, or an already parsed mapping) safely.

- The size is checked before parsing.
- YAML goes through PyYAML's safe loader, and its node graph is inspected before any Python
  object is built: an alias (``*name``) counts as a full copy of what it points at, so a
  "billion laughs" document is refused instead of being expanded later by a validator, a
  ``json.dumps`` or a ``$ref`` resolver. Recursive aliases are refused too.
- The result is plain JSON data: string keys (YAML's ``200:`` becomes ``"200"``), dates as ISO
  strings, and no YAML-only types (binary, sets).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

import yaml

from marketplace.specs.errors import SpecError, format_path

__all__ = ["MAX_DEPTH", "MAX_YAML_ALIAS_EXPANSION", "load_document", "load_mapping"]

MAX_DEPTH = 200
"""Deeper nesting than this is refused: no real API document needs it, and recursion does."""

MAX_YAML_ALIAS_EXPANSION = 100_000
"""How many nodes YAML aliases may add to a document once expanded."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_document(source: str | bytes, *, max_bytes: int, what: str = "document") -> Any:
    """Parse JSON or YAML text into plain JSON data (any root type).

    Text whose first non-blank character is ``{`` or ``[`` is parsed as JSON (so a JSON typo
    is reported as a JSON error, not as a puzzling YAML one); anything else as YAML.
    Raises SpecError for oversize, empty, undecodable or malformed input, and alias bombs.
    """
    if isinstance(source, bytes):
        if len(source) > max_bytes:
            raise SpecError(_too_big(what, len(source), max_bytes))
        try:
            text = source.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SpecError(f"The {what} is not UTF-8 text (byte {exc.start} cannot be decoded).") from None
    else:
        text = source.removeprefix("\ufeff")
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > max_bytes:
            raise SpecError(_too_big(what, size, max_bytes))
    stripped = text.lstrip()
    if not stripped:
        raise SpecError(f"The {what} is empty.")
    data = _parse_json(text, what) if stripped[0] in "{[" else _parse_yaml(text, what)
    return _normalize(data, (), 0)


def load_mapping(source: str | bytes | Mapping[str, Any], *, max_bytes: int, what: str = "document") -> dict[str, Any]:
    """Like `load_document`, but the root must be a mapping, which may also be given parsed.

    A parsed mapping is normalized the same way and held to the same size limit (measured as
    compact JSON), so callers cannot bypass the limit by parsing first.
    """
    if isinstance(source, Mapping):
        data = _normalize(source, (), 0)
        size = len(json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass"))
        if size > max_bytes:
            raise SpecError(_too_big(what, size, max_bytes))
    elif isinstance(source, str | bytes):
        data = load_document(source, max_bytes=max_bytes, what=what)
    else:
        raise SpecError(f"The {what} must be JSON or YAML text or a mapping, not {type(source).__name__}.")
    if not isinstance(data, dict):
        raise SpecError(f"The {what}'s root must be an object (a mapping of names to values), not {_kind(data)}.")
    return data


def _too_big(what: str, size: int, limit: int) -> str:
    return f"The {what} is {size:,} bytes; the limit is {limit:,} bytes."


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"The {what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}.") from None
    except RecursionError:
        raise SpecError(f"The {what} is nested more than {MAX_DEPTH} levels deep.") from None


def _parse_yaml(text: str, what: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, what)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise SpecError(f"The {what} is not valid YAML: {problem}{where}.") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"The {what} is not valid YAML: {exc}.") from None
    except RecursionError:
        raise SpecError(f"The {what} is nested more than {MAX_DEPTH} levels deep.") from None
    finally:
        loader.dispose()


def _check_expansion(root: yaml.Node, what: str) -> None:
    """Refuse YAML whose aliases expand it by more than MAX_YAML_ALIAS_EXPANSION nodes.

    The composer shares one node object between an anchor and its aliases, so the node graph
    is small even for a bomb; its expanded size is computed with a memo per node object.
    """
    expanded: dict[int, int] = {}
    on_stack: set[int] = set()
    distinct: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in expanded:
            return expanded[key]
        if key in on_stack:
            raise SpecError(f"The {what} contains a recursive YAML alias (an anchor used inside itself).")
        if depth > MAX_DEPTH:
            raise SpecError(f"The {what} is nested more than {MAX_DEPTH} levels deep.")
        distinct.add(key)
        on_stack.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        on_stack.discard(key)
        expanded[key] = total
        if total - len(distinct) > MAX_YAML_ALIAS_EXPANSION:
            raise SpecError(
                f"The {what}'s YAML aliases (*name) would expand it by more than {MAX_YAML_ALIAS_EXPANSION:,} "
                "nodes: refusing it as a likely alias bomb. Write the repeated parts out, or use $ref."
            )
        return total

    size(root, 0)


def _normalize(value: Any, path: tuple[str | int, ...], depth: int) -> Any:
    if depth > MAX_DEPTH:
        raise SpecError(f"The document is nested more than {MAX_DEPTH} levels deep.", field=format_path(path))
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            name = _key(key, path)
            out[name] = _normalize(item, (*path, name), depth + 1)
        return out
    if isinstance(value, list | tuple):
        return [_normalize(item, (*path, i), depth + 1) for i, item in enumerate(value)]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    raise SpecError(
        f"{format_path(path)}: {type(value).__name__} values are not allowed; use JSON types only.",
        field=format_path(path),
    )


def _key(key: object, path: tuple[str | int, ...]) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bool):
        return "true" if key else "false"
    if key is None:
        return "null"
    if isinstance(key, int | float):
        return str(key)
    if isinstance(key, dt.date | dt.datetime):
        return key.isoformat()
    raise SpecError(f"{format_path(path)}: a {type(key).__name__} cannot be used as a key.", field=format_path(path))


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "empty (null)"
    if isinstance(value, str):
        return "a string"
    return f"a {type(value).__name__}"
