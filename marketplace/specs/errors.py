"""The one exception the spec tools raise, and the path notation its messages use.

A `SpecError` message is shown as-is on provider forms and in API errors, so it says what is
wrong and where, in the document's own terms: ``paths./pets.get.responses: ...``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SpecError", "format_path"]


class SpecError(ValueError):
    """A document or definition that cannot be accepted.

    - ``message``: one user-facing sentence (``str(error)`` returns it).
    - ``field``: where the (first) problem is, in ``format_path`` notation, or None when it
      concerns the whole document.
    - ``details``: every problem found, one line each, when there are several (a validator
      that stops at the first error makes providers fix documents one typo at a time).
    """

    def __init__(self, message: str, *, field: str | None = None, details: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.details: list[str] = list(details) if details else []

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"SpecError({self.message!r}, field={self.field!r}, details={self.details!r})"

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready form for API error bodies."""
        return {"message": self.message, "field": self.field, "details": list(self.details)}


def format_path(parts: Iterable[str | int]) -> str:
    """``("paths", "/pets", "get", "parameters", 0)`` -> ``"paths./pets.get.parameters[0]"``.

    The root (no parts) is ``"(root)"``, so a message never starts with a bare colon.
    """
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif out:
            out += f".{part}"
        else:
            out = str(part)
    return out or "(root)"
