"""The public, read-only MCP Registry API (v0.1), under /v0.1/.

Plain Django views: no session, no CSRF, no authentication. Errors are problem documents
(``{"title", "status", "detail"}``, as the official registry answers them), also for
unknown URLs and methods under /v0.1/.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import json
import re
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.api.errors import PROBLEM_CONTENT_TYPE, problem
from marketplace.models import ProductVersion
from marketplace.registry import selectors
from marketplace.registry.serialize import server_entry

DEFAULT_LIMIT = 30
MAX_LIMIT = 100
MAX_PARAM_LENGTH = 200

# RFC 3339 date-time: a full date, a time, and an offset (Z or ±hh:mm).
_RFC3339_RE = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}

RegistryView = Callable[..., HttpResponse]


class ParameterError(Exception):
    def __init__(self, location: str, detail: str, value: object) -> None:
        super().__init__(detail)
        self.location, self.detail, self.value = location, detail, value


def problem_response(status: int, detail: str, *, code: str, **extra: Any) -> JsonResponse:
    return JsonResponse(problem(status, detail, code=code, **extra), status=status, content_type=PROBLEM_CONTENT_TYPE)


def registry_view(view: RegistryView) -> RegistryView:
    """GET (and HEAD) only, and a bad query parameter becomes a 400 problem document.
    (Exempt from CSRF checks, which would otherwise answer an unsafe method before the
    view could: the views never change anything.)"""

    @csrf_exempt
    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.method not in {"GET", "HEAD"}:
            response = problem_response(405, f"{request.method} is not allowed here.", code="method_not_allowed")
            response["Allow"] = "GET, HEAD"
            return response
        try:
            return view(request, *args, **kwargs)
        except ParameterError as error:
            return problem_response(
                400,
                error.detail,
                code="invalid",
                errors=[{"location": error.location, "message": error.detail, "value": error.value}],
            )

    return wrapper


def encode_cursor(position: selectors.Position) -> str:
    raw = json.dumps([position.slug, position.version], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> selectors.Position:
    invalid = ParameterError("query.cursor", "The cursor is not one this API returned.", cursor)
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise invalid from None
    if not (
        isinstance(data, list) and len(data) == 2 and all(isinstance(x, str) and x and "\x00" not in x for x in data)
    ):
        raise invalid
    return selectors.Position(slug=data[0], version=data[1])


def _text(request: HttpRequest, name: str) -> str:
    value = request.GET.get(name, "")
    if len(value) > MAX_PARAM_LENGTH:
        raise ParameterError(f"query.{name}", f"{name} is longer than {MAX_PARAM_LENGTH} characters.", value)
    if "\x00" in value:  # no database text holds one: it could match nothing, and PostgreSQL refuses it
        raise ParameterError(f"query.{name}", f"{name} contains a NUL character.", value.replace("\x00", ""))
    return value


def parse_limit(request: HttpRequest) -> int:
    value = request.GET.get("limit")
    if value is None or value == "":
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise ParameterError("query.limit", f"limit must be a whole number from 1 to {MAX_LIMIT}.", value)
    return int(value)


def parse_updated_since(request: HttpRequest) -> dt.datetime | None:
    value = _text(request, "updated_since").strip()
    if not value:
        return None
    # An unencoded "+hh:mm" offset arrives as " hh:mm": a query string's + is a space.
    value = re.sub(r" (\d{2}:\d{2})$", r"+\1", value)
    if not _RFC3339_RE.match(value):
        raise ParameterError(
            "query.updated_since", "updated_since must be an RFC 3339 date-time, such as 2025-08-07T13:15:04Z.", value
        )
    # Python parses at most 6 digits of a second's fraction; finer ones cannot matter.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value).upper()
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ParameterError("query.updated_since", f"{value} is not a valid date and time.", value) from None


def parse_bool(request: HttpRequest, name: str, default: bool) -> bool:
    value = request.GET.get(name)
    if value is None or value == "":
        return default
    if value.lower() not in _BOOLEANS:
        raise ParameterError(f"query.{name}", f"{name} must be true or false.", value)
    return _BOOLEANS[value.lower()]


def _entry(version: ProductVersion) -> dict[str, Any]:
    # is_latest is annotated by registry.selectors.registry_versions.
    return server_entry(version, is_latest=bool(getattr(version, "is_latest", False)))


def _list_response(entries: list[dict[str, Any]], next_cursor: str | None = None) -> JsonResponse:
    metadata: dict[str, Any] = {"count": len(entries)}
    if next_cursor:
        metadata["nextCursor"] = next_cursor
    return JsonResponse({"servers": entries, "metadata": metadata})


@registry_view
def server_list(request: HttpRequest) -> HttpResponse:
    """GET /v0.1/servers: every listed server version, a page at a time."""
    limit = parse_limit(request)
    cursor = _text(request, "cursor")
    after = decode_cursor(cursor) if cursor else None
    updated_since = parse_updated_since(request)
    filters = selectors.ListFilters(
        search=_text(request, "search").strip(),
        updated_since=updated_since,
        version=_text(request, "version").strip(),
        # As in the official registry: a sync by updated_since also learns of deletions.
        include_deleted=parse_bool(request, "include_deleted", default=updated_since is not None),
    )
    page, more = selectors.registry_list(filters, after=after, limit=limit)
    entries = [_entry(version) for version in page]
    next_cursor = None
    if more and page:
        next_cursor = encode_cursor(selectors.Position(slug=page[-1].product.slug, version=page[-1].version))
    return _list_response(entries, next_cursor)


@registry_view
def server_versions(request: HttpRequest, name: str) -> HttpResponse:
    """GET /v0.1/servers/{name}/versions: the server's versions, newest first."""
    if "\x00" in name:
        return problem_response(404, "No server has that name.", code="not_found")
    versions = selectors.server_versions(name, include_deleted=parse_bool(request, "include_deleted", default=False))
    if not versions:
        return problem_response(404, f"No server named {name!r}.", code="not_found")
    return _list_response([_entry(version) for version in versions])


@registry_view
def server_version(request: HttpRequest, name: str, version: str) -> HttpResponse:
    """GET /v0.1/servers/{name}/versions/{version}, where ``latest`` is allowed."""
    if "\x00" in name + version:
        return problem_response(404, "No server or version has that name.", code="not_found")
    found = selectors.server_version(
        name, version, include_deleted=parse_bool(request, "include_deleted", default=False)
    )
    if found is None:
        if not selectors.server_versions(name, include_deleted=True):
            return problem_response(404, f"No server named {name!r}.", code="not_found")
        return problem_response(404, f"The server {name!r} has no version {version!r}.", code="not_found")
    return JsonResponse(_entry(found))


@csrf_exempt
def not_found(request: HttpRequest, rest: str = "") -> HttpResponse:
    return problem_response(404, "No such endpoint in the registry API.", code="not_found")
