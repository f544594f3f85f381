"""``$ref`` handling for documents that must be self-contained.

Only local references (``#/components/schemas/Pet``) are followed. A reference to another file
or URL is refused: following it would let a provider's document make the portal read local
files or fetch internal URLs, and the stored product would depend on a document we do not hold.

`RefResolver.resolve` returns a deep copy with every reference replaced by what it points at:
- a reference met again inside its own expansion (a recursive schema) is replaced by
  ``{"$comment": "recursive reference to #/..."}``, which JSON Schema reads as "anything";
- the total number of nodes produced is capped, so a small document whose references fan out
  exponentially cannot exhaust memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote

from marketplace.specs.errors import SpecError, format_path

__all__ = ["DEFAULT_EXPANSION_BUDGET", "RefResolver", "dangling_refs", "external_refs", "iter_refs"]

DEFAULT_EXPANSION_BUDGET = 1_000_000

# Values under these keys are data (examples, defaults), not schema or document structure: a
# "$ref" key inside them is just a key. ("examples" is data in a schema, where it is a list, but
# a map of Example Objects, which may be references, in a media type or parameter.)
_DATA_KEYS = frozenset({"example", "examples", "default", "enum", "const", "value", "x-examples"})
# The keys of these mappings are names chosen by the author, so "$ref" there is a name.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "schemas", "dependentSchemas"})

Path = tuple[str | int, ...]


def _is_data(key: str, value: Any, parent_key: str | int | None, is_name_map: bool) -> bool:
    if key not in _DATA_KEYS or is_name_map:
        return False
    if key == "examples":
        return not isinstance(value, dict)
    # "default" is data in a schema or parameter, but a Response Object under "responses".
    return not (key == "default" and parent_key == "responses")


def iter_refs(node: Any, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Yield ``(path of the $ref key, reference)`` for every string ``$ref`` in the document."""
    stack: list[tuple[Any, Path, bool]] = [(node, path, False)]
    while stack:
        current, where, is_name_map = stack.pop()
        if isinstance(current, dict):
            own_key = where[-1] if where else None
            for key, value in current.items():
                if key == "$ref" and not is_name_map and isinstance(value, str):
                    yield (*where, key), value
                elif not _is_data(key, value, own_key, is_name_map):
                    stack.append((value, (*where, key), key in _NAME_MAPS and not is_name_map))
        elif isinstance(current, list):
            stack.extend((item, (*where, i), False) for i, item in enumerate(current))


def external_refs(document: dict[str, Any]) -> list[str]:
    """One line per reference that leaves the document (``other.yaml#/x``, ``https://...``)."""
    return [
        f"{format_path(path)}: {ref!r} points outside this document; only local references ('#/...') are "
        "supported, so bundle the document into one file first"
        for path, ref in sorted(iter_refs(document), key=lambda item: [str(p) for p in item[0]])
        if not ref.startswith("#")
    ]


def dangling_refs(document: dict[str, Any]) -> list[str]:
    """One line per local reference that points at nothing."""
    problems = []
    for path, ref in iter_refs(document):
        if ref.startswith("#"):
            try:
                lookup(document, ref)
            except SpecError as exc:
                problems.append(f"{format_path(path)}: {exc.message}")
    return sorted(problems)


def lookup(document: Any, ref: str) -> Any:
    """The value a local reference (``#/a/b~1c``) points at, or SpecError."""
    if not ref.startswith("#"):
        raise SpecError(f"{ref!r} is not a local reference")
    pointer = unquote(ref[1:])
    if pointer == "":
        return document
    if not pointer.startswith("/"):
        raise SpecError(f"{ref!r} is not a JSON pointer (it must start with '#/')")
    node = document
    for token in pointer[1:].split("/"):
        key = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise SpecError(f"{ref!r} points at nothing (no {key!r} there)")
    return node


class RefResolver:
    """Expands local references of one document within a shared node budget."""

    def __init__(self, document: dict[str, Any], *, budget: int = DEFAULT_EXPANSION_BUDGET) -> None:
        self.document = document
        self.budget = budget
        self.limit = budget

    def resolve(self, node: Any, *, where: str = "", key: str | None = None) -> Any:
        """A deep copy of ``node`` with its references expanded (see the module docstring).

        ``key`` is the name ``node`` sits under in the document, when that changes its meaning
        (``"responses"``: its ``default`` is a Response Object, not a default value).
        """
        return self._resolve(node, (), where, False, key)

    def target(self, node: Any, *, where: str = "") -> Any:
        """Follow ``node`` while it is a bare reference (a Reference Object); no deep copy."""
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in seen:
                raise SpecError(f"{where}: {ref!r} refers to itself", field=where or None)
            seen.add(ref)
            node = self._lookup(ref, where)
        return node

    def _lookup(self, ref: str, where: str) -> Any:
        try:
            return lookup(self.document, ref)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc.message}" if where else exc.message, field=where or None) from None

    def _spend(self, where: str) -> None:
        self.budget -= 1
        if self.budget < 0:
            raise SpecError(
                f"{where + ': ' if where else ''}expanding the $ref references produces more than "
                f"{self.limit:,} nodes; simplify the schemas (fewer nested references).",
                field=where or None,
            )

    def _resolve(self, node: Any, stack: tuple[str, ...], where: str, is_name_map: bool, own_key: str | None) -> Any:
        self._spend(where)
        if isinstance(node, list):
            return [self._resolve(item, stack, where, False, None) for item in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and not is_name_map:
            siblings = {k: v for k, v in node.items() if k != "$ref"}
            if ref in stack:
                resolved: Any = {"$comment": f"recursive reference to {ref}"}
            else:
                resolved = self._resolve(self._lookup(ref, where), (*stack, ref), where, False, own_key)
            if siblings and isinstance(resolved, dict):
                # OpenAPI 3.1 lets summary/description (and JSON Schema keywords) sit next to a
                # $ref and override the target's; 3.0 ignores them, which merging cannot hurt.
                merged = dict(resolved)
                merged.update(self._resolve(siblings, stack, where, False, own_key))
                return merged
            return resolved
        out: dict[str, Any] = {}
        for key, value in node.items():
            if _is_data(key, value, own_key, is_name_map):
                out[key] = self._copy(value, where)
            else:
                out[key] = self._resolve(value, stack, where, key in _NAME_MAPS and not is_name_map, key)
        return out

    def _copy(self, node: Any, where: str) -> Any:
        self._spend(where)
        if isinstance(node, dict):
            return {k: self._copy(v, where) for k, v in node.items()}
        if isinstance(node, list):
            return [self._copy(v, where) for v in node]
        return node
