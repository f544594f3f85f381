"""Parsing a provider's OpenAPI 3.0 / 3.1 document into the operations the marketplace needs.

`parse_openapi` is the one entry point. Its contract:

1. The input is JSON or YAML text (or an already parsed mapping) of at most ``max_bytes``;
   YAML is loaded safely and alias bombs are refused (see `documents`).
2. Swagger 2.0, other OpenAPI versions, and references to other files or URLs are refused.
3. The document is validated with ``openapi-spec-validator``; every problem found (up to
   `MAX_PROBLEMS`) is reported with its location, not just the first.
4. The result lists each operation with its parameters and JSON schemas, ``$ref``s expanded.
   Schemas are JSON Schema (2020-12 flavoured): OpenAPI 3.0's ``nullable`` and boolean
   ``exclusiveMinimum``/``exclusiveMaximum`` are translated.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jsonschema.exceptions import ValidationError  # type: ignore[import-untyped]
from openapi_spec_validator import OpenAPIV30SpecValidator, OpenAPIV31SpecValidator

from marketplace.specs.documents import load_mapping
from marketplace.specs.errors import SpecError, format_path
from marketplace.specs.refs import RefResolver, dangling_refs, external_refs

__all__ = [
    "HTTP_METHODS",
    "MAX_PROBLEMS",
    "OpenApiServer",
    "OpenApiSpec",
    "Operation",
    "Parameter",
    "parse_openapi",
]

MAX_PROBLEMS = 20
HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_MESSAGE_LIMIT = 300


@dataclass(frozen=True, slots=True)
class Parameter:
    """One operation parameter. ``location`` is ``path``, ``query``, ``header`` or ``cookie``."""

    name: str
    location: str
    required: bool = False
    description: str = ""
    schema: dict[str, Any] = field(default_factory=dict)
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class Operation:
    """One HTTP operation. ``method`` is upper case; ``path`` keeps its ``{param}`` templates.

    ``request_body_schema`` is the schema of the preferred media type (JSON first, then forms,
    then whatever comes first), named by ``request_body_content_type``. ``response_schema`` is
    that of the lowest 2xx response that has one (then ``2XX``, then ``default``).
    """

    method: str
    path: str
    operation_id: str | None = None
    summary: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)
    parameters: list[Parameter] = field(default_factory=list)
    request_body_schema: dict[str, Any] | None = None
    response_schema: dict[str, Any] | None = None
    request_body_content_type: str | None = None
    request_body_required: bool = False
    deprecated: bool = False


@dataclass(frozen=True, slots=True)
class OpenApiServer:
    """A Server Object; ``variables`` maps each server variable to its default."""

    url: str
    description: str = ""
    variables: dict[str, str] = field(default_factory=dict)

    @property
    def default_url(self) -> str:
        """``url`` with every ``{variable}`` replaced by its default."""
        return re.sub(r"\{([^{}]+)\}", lambda m: self.variables.get(m.group(1), m.group(0)), self.url)


@dataclass(frozen=True, slots=True)
class OpenApiSpec:
    """A validated document. ``document`` is the normalized input (JSON data), for storage."""

    openapi_version: str
    title: str
    version: str
    description: str = ""
    servers: list[OpenApiServer] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    document: dict[str, Any] = field(default_factory=dict, repr=False)


class _V30Validator(OpenAPIV30SpecValidator):
    # No handlers: the validator must never read a file or fetch a URL on a provider's behalf.
    resolver_handlers: dict[str, Any] = {}


class _V31Validator(OpenAPIV31SpecValidator):
    resolver_handlers: dict[str, Any] = {}


def parse_openapi(text_or_dict: str | bytes | Mapping[str, Any], *, max_bytes: int = 2_000_000) -> OpenApiSpec:
    """Validate an OpenAPI 3.0/3.1 document and list its operations; SpecError otherwise."""
    document = load_mapping(text_or_dict, max_bytes=max_bytes, what="OpenAPI document")
    version = _check_version(document)
    problems = external_refs(document)
    if problems:
        raise _problems_error("The OpenAPI document refers to other documents", problems)
    problems = dangling_refs(document)
    if problems:
        raise _problems_error("The OpenAPI document has broken $ref references", problems)
    problems = _validation_problems(document, _V30Validator if version.startswith("3.0") else _V31Validator)
    if problems:
        raise _problems_error("The OpenAPI document is invalid", problems)
    try:
        return _extract(document, version)
    except RecursionError:
        raise SpecError("The OpenAPI document's schemas are nested too deeply to expand.") from None


def _check_version(document: dict[str, Any]) -> str:
    if "swagger" in document:
        raise SpecError(
            f"This is a Swagger {document['swagger']} document; convert it to OpenAPI 3 first "
            "(for example with swagger2openapi, or by importing it into editor.swagger.io).",
            field="swagger",
        )
    version = document.get("openapi")
    if version is None:
        raise SpecError(
            "The document has no 'openapi' field, so it is not an OpenAPI 3 document.",
            field="openapi",
        )
    if not isinstance(version, str):
        raise SpecError(
            f'openapi: the version must be a string such as "3.1.0", not {version!r} '
            '(quote it in YAML: openapi: "3.0.3").',
            field="openapi",
        )
    if not re.fullmatch(r"3\.[01]\.\d+", version):
        raise SpecError(
            f"openapi: version {version!r} is not supported; use OpenAPI 3.0.x or 3.1.x.",
            field="openapi",
        )
    return version


def _problems_error(summary: str, problems: list[str]) -> SpecError:
    first = problems[0]
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    field_ = first.split(": ", 1)[0] if ": " in first else None
    return SpecError(f"{summary}: {first}{more}.", field=field_, details=problems)


def _validation_problems(
    document: dict[str, Any], cls: type[OpenAPIV30SpecValidator] | type[OpenAPIV31SpecValidator]
) -> list[str]:
    problems: list[str] = []
    try:
        for error in cls(document).iter_errors():
            path, message = _describe(error)
            if path and path[0] not in document:
                # The semantic checks validate schemas in isolation, with paths relative to the
                # schema; such a problem usually repeats one already reported in full.
                suffix = f"{format_path(path)}: "
                if any(line.split(": ", 1)[0].endswith(suffix[:-2]) for line in problems):
                    continue
                line = f"(in a schema) {suffix}{message}"
            else:
                line = f"{format_path(path)}: {message}"
            if line not in problems:
                problems.append(line)
            if len(problems) >= MAX_PROBLEMS:
                break
    except Exception as exc:  # the validator raises arbitrary errors on documents it cannot walk
        problems.append(f"(root): validation could not finish: {_shorten(str(exc))}")
    return problems


def _describe(error: ValidationError) -> tuple[list[str | int], str]:
    """The location and message of the most specific problem behind ``error``.

    A "not valid under any of the given schemas" error hides the real mistake among the
    alternatives it tried: the deepest one is reported, skipping the never-helpful "this
    could have been a Reference Object", and sibling "not one of" alternatives are merged.
    """
    leaves: list[ValidationError] = []
    stack = list(error.context or [])
    while stack:
        sub = stack.pop(0)
        if sub.context:
            stack.extend(sub.context)
        elif sub.message != "'$ref' is a required property":
            leaves.append(sub)
    if not leaves:
        return list(error.absolute_path), _shorten(error.message)
    depth = max(len(sub.absolute_path) for sub in leaves)
    deepest = [sub for sub in leaves if len(sub.absolute_path) == depth]
    best = deepest[0]
    if best.validator == "enum" and all(sub.validator == "enum" for sub in deepest):
        allowed: list[Any] = []
        for sub in deepest:
            allowed.extend(v for v in sub.validator_value if v not in allowed)
        return list(best.absolute_path), _shorten(f"{best.instance!r} is not one of {allowed!r}")
    return list(best.absolute_path), _shorten(best.message)


def _shorten(message: str) -> str:
    message = " ".join(message.split())
    return message if len(message) <= _MESSAGE_LIMIT else message[: _MESSAGE_LIMIT - 1] + "…"


# --- extraction -----------------------------------------------------------------------------


def _extract(document: dict[str, Any], version: str) -> OpenApiSpec:
    resolver = RefResolver(document)
    info = document.get("info") or {}
    operations: list[Operation] = []
    for path, raw_item in (document.get("paths") or {}).items():
        where = format_path(("paths", path))
        item = resolver.target(raw_item, where=where)
        if not isinstance(item, dict):
            continue
        shared = _parameters(resolver, item.get("parameters") or [], where)
        for method, raw_op in item.items():
            if method not in HTTP_METHODS or not isinstance(raw_op, dict):
                continue
            operations.append(_operation(resolver, path, method, raw_op, shared, version))
    return OpenApiSpec(
        openapi_version=version,
        title=str(info.get("title", "")),
        version=str(info.get("version", "")),
        description=str(info.get("description") or ""),
        servers=[_server(s) for s in document.get("servers") or [] if isinstance(s, dict)],
        operations=operations,
        document=document,
    )


def _server(raw: dict[str, Any]) -> OpenApiServer:
    variables = raw.get("variables") or {}
    return OpenApiServer(
        url=str(raw.get("url", "")),
        description=str(raw.get("description") or ""),
        variables={str(k): str(v.get("default", "")) for k, v in variables.items() if isinstance(v, dict)},
    )


def _operation(
    resolver: RefResolver,
    path: str,
    method: str,
    raw: dict[str, Any],
    shared: list[Parameter],
    version: str,
) -> Operation:
    where = format_path(("paths", path, method))
    own = _parameters(resolver, raw.get("parameters") or [], where)
    merged = {(p.name, p.location): p for p in shared}
    merged.update({(p.name, p.location): p for p in own})
    body_schema, body_type, body_required = None, None, False
    body = resolver.target(raw.get("requestBody"), where=f"{where}.requestBody")
    if isinstance(body, dict):
        body_type, schema = _media_schema(resolver, body.get("content"), f"{where}.requestBody")
        body_schema = _json_schema(schema, version) if schema is not None else None
        body_required = bool(body.get("required", False))
    response_schema = _response_schema(resolver, raw.get("responses") or {}, f"{where}.responses")
    return Operation(
        method=method.upper(),
        path=path,
        operation_id=raw.get("operationId"),
        summary=str(raw.get("summary") or ""),
        description=str(raw.get("description") or ""),
        tags=[str(t) for t in raw.get("tags") or []],
        parameters=[
            Parameter(p.name, p.location, p.required, p.description, _json_schema(p.schema, version), p.deprecated)
            for p in merged.values()
        ],
        request_body_schema=body_schema,
        response_schema=_json_schema(response_schema, version) if response_schema is not None else None,
        request_body_content_type=body_type,
        request_body_required=body_required,
        deprecated=bool(raw.get("deprecated", False)),
    )


def _parameters(resolver: RefResolver, raw: list[Any], where: str) -> list[Parameter]:
    params = []
    for i, entry in enumerate(raw):
        param = resolver.target(entry, where=f"{where}.parameters[{i}]")
        if not isinstance(param, dict):
            continue
        schema = param.get("schema")
        if schema is None:
            _, schema = _media_schema(resolver, param.get("content"), f"{where}.parameters[{i}]")
        location = str(param.get("in", ""))
        params.append(
            Parameter(
                name=str(param.get("name", "")),
                location=location,
                required=bool(param.get("required", location == "path")),
                description=str(param.get("description") or ""),
                schema=resolver.resolve(schema, where=f"{where}.parameters[{i}]") if schema is not None else {},
                deprecated=bool(param.get("deprecated", False)),
            )
        )
    return params


def _media_schema(resolver: RefResolver, content: Any, where: str) -> tuple[str | None, dict[str, Any] | None]:
    """The preferred media type of a ``content`` map, and its expanded schema."""
    if not isinstance(content, dict) or not content:
        return None, None

    def rank(media_type: str) -> int:
        base = media_type.split(";", 1)[0].strip().lower()
        if base == "application/json":
            return 0
        if base.endswith("+json") or base.endswith("/json"):
            return 1
        if base == "application/x-www-form-urlencoded":
            return 2
        return 3

    media_type = min(content, key=rank)  # min() keeps document order among equals
    entry = content[media_type]
    schema = entry.get("schema") if isinstance(entry, dict) else None
    if schema is None:
        return media_type, None
    return media_type, resolver.resolve(schema, where=f"{where}.content.{media_type}.schema")


def _response_schema(resolver: RefResolver, responses: dict[str, Any], where: str) -> dict[str, Any] | None:
    def order(code: str) -> tuple[int, str]:
        if re.fullmatch(r"2\d\d", code):
            return (0, code)
        if code.upper() == "2XX":
            return (1, code)
        return (2, code) if code == "default" else (3, code)

    for code in sorted(responses, key=order):
        if order(code)[0] > 2:
            break
        response = resolver.target(responses[code], where=f"{where}.{code}")
        if isinstance(response, dict):
            _, schema = _media_schema(resolver, response.get("content"), f"{where}.{code}")
            if schema is not None:
                return schema
    return None


# --- OpenAPI 3.0 schema -> JSON Schema ------------------------------------------------------

_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedProperties",
    "unevaluatedItems",
    "additionalItems",
)


def _json_schema(schema: Any, version: str) -> dict[str, Any]:
    if not isinstance(schema, dict):
        return {}
    return _convert_30(schema) if version.startswith("3.0") else schema


def _convert_30(schema: dict[str, Any]) -> dict[str, Any]:
    out = dict(schema)
    if out.pop("nullable", False) is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    for exclusive, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(exclusive), bool) and out.pop(exclusive) and bound in out:
            out[exclusive] = out.pop(bound)
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {k: _convert_30(v) if isinstance(v, dict) else v for k, v in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_convert_30(v) if isinstance(v, dict) else v for v in out[key]]
    for key in _SCHEMA_VALUES:
        if isinstance(out.get(key), dict):
            out[key] = _convert_30(out[key])
    return out
