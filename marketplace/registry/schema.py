"""The official server.json schema (vendored byte for byte next to this module; see
docs/registry.md for its source and licence) and readable messages for its errors.

jsonschema checks the ``uri`` format only when an optional package is installed; this
module registers a small checker of its own, so that validation does not depend on
what else happens to be installed.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any

from jsonschema import Draft7Validator, FormatChecker  # type: ignore[import-untyped]
from jsonschema.exceptions import ValidationError as SchemaError  # type: ignore[import-untyped]
from jsonschema.exceptions import best_match

SCHEMA_URL = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"

# RFC 3986 "URI" (absolute, scheme required), without whitespace or control characters.
_URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s\x00-\x1f\x7f]+$")


def is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(_URI_RE.match(value))


@functools.cache
def server_schema() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("server.schema.json").read_text(encoding="utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


@functools.cache
def server_validator() -> Draft7Validator:
    checker = FormatChecker()
    checker.checks("uri")(is_uri)
    return Draft7Validator(server_schema(), format_checker=checker)


def json_path(parts: Iterable[str | int], prefix: str = "") -> str:
    """``["remotes", 0, "url"]`` -> ``remotes[0].url`` (``prefix`` goes in front)."""
    path = prefix
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(document)"


def _short(value: object, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _branch_errors(error: SchemaError) -> SchemaError:
    """For an anyOf (a remote is streamable-http *or* sse), the error of the branch
    whose ``type`` matched, rather than "not valid under any of the given schemas"."""
    branches: dict[Any, list[SchemaError]] = {}
    for sub in error.context or []:
        branches.setdefault(sub.relative_schema_path[0], []).append(sub)
    type_errors = [
        sub
        for subs in branches.values()
        for sub in subs
        if sub.validator in {"enum", "const"} and list(sub.relative_path)[-1:] == ["type"]
    ]
    matching = [subs for subs in branches.values() if not any(sub in type_errors for sub in subs)]
    if matching:
        return best_match(matching[0])
    if type_errors:
        # Every branch refused the type: say which types are allowed, once.
        allowed = sorted({str(v) for sub in type_errors for v in (sub.validator_value or [])})
        first = type_errors[0]
        return SchemaError(
            f"{_short(first.instance)} is not one of {', '.join(allowed)}",
            validator="enum",
            path=first.absolute_path,
            validator_value=allowed,
            instance=first.instance,
        )
    return best_match(error.context or [error])


def _message(error: SchemaError) -> str:
    validator, expected, instance = error.validator, error.validator_value, error.instance
    if validator == "maxLength":
        return f"is {len(instance)} characters long; at most {expected} are allowed"
    if validator == "minLength":
        return f"must be at least {expected} character{'s' if expected != 1 else ''} long"
    if validator == "pattern":
        return f"{_short(instance)} does not match {expected}"
    if validator == "required":
        return str(error.message).replace(" is a required property", " is required")
    if validator == "type":
        return f"must be of type {expected}, not {type(instance).__name__}"
    if validator == "enum":
        return f"{_short(instance)} is not one of {', '.join(map(str, expected))}"
    if validator == "format":
        return f"{_short(instance)} is not a valid {expected}"
    if validator == "not" and isinstance(expected, dict) and "const" in expected:
        return f"must not be {_short(expected['const'])}"
    message = str(error.message)
    return message if len(message) <= 200 else message[:199] + "…"


def describe_errors(errors: Iterable[SchemaError], prefix: str = "") -> list[str]:
    """One line per error, ``path: message``, sorted by path."""
    lines: list[tuple[Sequence[str | int], str]] = []
    for error in errors:
        leaf = _branch_errors(error) if error.context else error
        parts = list(leaf.absolute_path)
        lines.append((parts, f"{json_path(parts, prefix)}: {_message(leaf)}"))
    lines.sort(key=lambda item: [str(p).zfill(6) if isinstance(p, int) else p for p in item[0]])
    return [line for _parts, line in lines]


def server_errors(server: object, prefix: str = "") -> list[str]:
    """What is wrong with a server.json document (empty when it is valid)."""
    return describe_errors(server_validator().iter_errors(server), prefix)
