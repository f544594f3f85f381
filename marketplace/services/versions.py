"""Draft versions: their upstream and their kind-specific specification.

Only drafts change. Each setter validates the whole document first (marketplace.specs)
and then replaces the derived rows (operations, models, tools) in one transaction, so a
bad document leaves the version exactly as it was.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import audit_record, require_role
from marketplace import outbound
from marketplace.crypto import secret_decrypt, secret_encrypt
from marketplace.models import ApiOperation, McpTool, ModelOffering, Product, ProductVersion
from marketplace.specs.agent_card import parse_agent_card
from marketplace.specs.errors import SpecError
from marketplace.specs.higress import import_higress_yaml
from marketplace.specs.mcp_discovery import discover_mcp_server_sync
from marketplace.specs.openapi import parse_openapi
from marketplace.specs.rest_to_mcp import RestToMcpServer, RestToMcpTool, tools_from_openapi, validate_definition

MAX_DOCUMENT_BYTES = 2_000_000
DISCOVERY_TIMEOUT_S = 15.0


def _spec_error(error: SpecError, field: str) -> ValidationError:
    """The SpecError as a ValidationError on the input ``field``. (SpecError.field is a
    place inside the document, such as ``paths./pets.get``; the messages name it.)"""
    return ValidationError({field: [str(error), *error.details[:20]]})


def _require_draft(version: ProductVersion) -> None:
    if not version.is_editable:
        raise ValidationError(
            f"Version {version.version} is {version.get_status_display().lower()}; only drafts change. "
            "Create a new version instead."
        )


def _require_kind(version: ProductVersion, *kinds: str) -> None:
    if version.product.kind not in kinds:
        raise ValidationError(f"This does not apply to {version.product.get_kind_display()} products.")


def _check_upstream_url(url: str, field: str = "upstream_url") -> None:
    if url:
        try:
            outbound.check_url(url)
        except outbound.OutboundError as error:
            raise ValidationError({field: str(error)}) from None


def _touch(version: ProductVersion, actor: User, action: str, changes: dict[str, Any]) -> None:
    version.updated_at = timezone.now()
    version.save()
    audit_record(actor=actor, action=action, target=version, organization=version.product.organization, changes=changes)


@transaction.atomic
def version_create(
    *,
    actor: User,
    product: Product,
    version: str,
    changelog: str = "",
    copy_from: ProductVersion | None = None,
) -> ProductVersion:
    """A new draft, empty or copied from an earlier version of the same product (its
    upstream, specification and derived rows), which is how a published version changes."""
    require_role(actor, product.organization, Role.MEMBER)
    if copy_from is not None and copy_from.product_id != product.pk:
        raise ValidationError({"copy_from": "Copy from a version of the same product."})
    if product.versions.filter(version=version.strip()).exists():
        raise ValidationError({"version": f"{product.name} already has a version {version.strip()}."})
    draft = ProductVersion(product=product, version=version.strip(), changelog=changelog, created_by=actor)
    if copy_from is not None:
        for field in (
            "upstream_url",
            "upstream_auth_header",
            "upstream_secret_encrypted",
            "connect_timeout_ms",
            "read_timeout_ms",
            "tls_verify",
            "mcp_transport",
            "spec",
            "spec_source_url",
        ):
            setattr(draft, field, getattr(copy_from, field))
    if product.kind == Product.Kind.MCP_SERVER and not draft.mcp_transport:
        draft.mcp_transport = ProductVersion.McpTransport.STREAMABLE_HTTP
    draft.full_clean()
    draft.save()
    if copy_from is not None:
        _copy_rows(copy_from, draft)
    audit_record(
        actor=actor,
        action="version.create",
        target=draft,
        organization=product.organization,
        changes={"version": draft.version, "copied_from": copy_from.version if copy_from else None},
    )
    return draft


def _copy_rows(source: ProductVersion, target: ProductVersion) -> None:
    operations = list(source.operations.all())
    models = list(source.models.all())
    tools = list(source.tools.all())
    rows: list[ApiOperation | ModelOffering | McpTool] = [*operations, *models, *tools]
    for row in rows:
        row.pk = None
        row.version = target
    ApiOperation.objects.bulk_create(operations)
    ModelOffering.objects.bulk_create(models)
    McpTool.objects.bulk_create(tools)


@transaction.atomic
def version_update(
    *,
    actor: User,
    version: ProductVersion,
    changelog: str | None = None,
    upstream_url: str | None = None,
    upstream_auth_header: str | None = None,
    upstream_secret: str | None = None,
    connect_timeout_ms: int | None = None,
    read_timeout_ms: int | None = None,
    tls_verify: bool | None = None,
    mcp_transport: str | None = None,
) -> ProductVersion:
    """Change a draft's upstream settings. ``upstream_secret``: None keeps the stored
    secret, "" clears it; it is encrypted and never returned."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    changes: dict[str, Any] = {}
    if upstream_url is not None and upstream_url != version.upstream_url:
        _check_upstream_url(upstream_url.strip())
        version.upstream_url = upstream_url.strip()
        changes["upstream_url"] = version.upstream_url
    if mcp_transport is not None and mcp_transport != version.mcp_transport:
        _require_kind(version, Product.Kind.MCP_SERVER)
        version.mcp_transport = mcp_transport
        changes["mcp_transport"] = mcp_transport
    for field, value in (
        ("changelog", changelog),
        ("upstream_auth_header", upstream_auth_header),
        ("connect_timeout_ms", connect_timeout_ms),
        ("read_timeout_ms", read_timeout_ms),
        ("tls_verify", tls_verify),
    ):
        if value is not None and getattr(version, field) != value:
            setattr(version, field, value.strip() if isinstance(value, str) and field != "changelog" else value)
            changes[field] = "(changed)" if field == "changelog" else getattr(version, field)
    if upstream_secret is not None:
        version.upstream_secret_encrypted = secret_encrypt(upstream_secret)
        changes["upstream_secret"] = "(set)" if upstream_secret else "(cleared)"
    if version.upstream_secret_encrypted and not version.upstream_auth_header:
        raise ValidationError({"upstream_auth_header": "Name the header that carries the upstream secret."})
    version.full_clean()
    _touch(version, actor, "version.update", changes)
    return version


def _document_text(text: str | None, url: str | None, field: str) -> tuple[str | dict[str, Any], str]:
    if bool(text) == bool(url):
        raise ValidationError({field: "Give either the document or a URL to fetch it from, not both."})
    if url:
        try:
            return outbound.fetch_document(url.strip(), max_bytes=MAX_DOCUMENT_BYTES).text, url.strip()
        except outbound.OutboundError as error:
            raise ValidationError({field: str(error)}) from None
    assert text is not None  # noqa: S101 (narrowing: exactly one of text and url is set)
    if len(text.encode()) > MAX_DOCUMENT_BYTES:
        raise ValidationError({field: f"The document is larger than the {MAX_DOCUMENT_BYTES:,}-byte limit."})
    return text, ""


@transaction.atomic
def version_set_openapi(
    *, actor: User, version: ProductVersion, document: str | None = None, url: str | None = None
) -> ProductVersion:
    """Set a REST API version's OpenAPI 3.0/3.1 document (given, or fetched from ``url``)
    and list its operations."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    _require_kind(version, Product.Kind.REST_API)
    source, source_url = _document_text(document, url, "openapi")
    try:
        spec = parse_openapi(source, max_bytes=MAX_DOCUMENT_BYTES)
    except SpecError as error:
        raise _spec_error(error, "openapi") from None
    version.spec = {"openapi": spec.document}
    version.spec_source_url = source_url
    version.operations.all().delete()
    ApiOperation.objects.bulk_create(
        ApiOperation(
            version=version,
            method=op.method.upper(),
            path=op.path[:500],
            operation_id=(op.operation_id or "")[:200],
            summary=(op.summary or "")[:500],
            description=op.description or "",
            tags=list(op.tags or []),
        )
        for op in spec.operations
    )
    if not version.upstream_url and spec.servers:
        server_url = spec.servers[0].default_url
        if server_url.startswith(("http://", "https://")):
            try:
                outbound.check_url(server_url)
                version.upstream_url = server_url
            except outbound.OutboundError:
                pass  # the provider sets the upstream explicitly then
    _touch(
        version,
        actor,
        "version.set_openapi",
        {"title": spec.title, "operations": len(spec.operations), "source_url": source_url},
    )
    return version


def _decimal(value: Any, field: str, index: int) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ValidationError({"models": f"Model {index + 1}: {field} must be a number."}) from None
    if number < 0 or not number.is_finite():
        raise ValidationError({"models": f"Model {index + 1}: {field} cannot be negative."})
    return number


@transaction.atomic
def version_set_models(*, actor: User, version: ProductVersion, models: Iterable[Mapping[str, Any]]) -> ProductVersion:
    """Replace the models a model-API version serves. Each item: public_name,
    upstream_name (defaults to public_name), context_window, input_price_per_mtok,
    output_price_per_mtok (USD per million tokens), capabilities."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    _require_kind(version, Product.Kind.MODEL_API)
    offerings: list[ModelOffering] = []
    seen: set[str] = set()
    for index, item in enumerate(models):
        public = str(item.get("public_name", "")).strip()
        if not public:
            raise ValidationError({"models": f"Model {index + 1}: a public name is required."})
        if public in seen:
            raise ValidationError({"models": f"Model {public!r} is listed twice."})
        seen.add(public)
        capabilities = list(item.get("capabilities") or [ModelOffering.Capability.CHAT])
        unknown = sorted(set(capabilities) - set(ModelOffering.Capability.values))
        if unknown:
            raise ValidationError({"models": f"Model {public!r}: unknown capabilities {', '.join(unknown)}."})
        offering = ModelOffering(
            version=version,
            public_name=public,
            upstream_name=str(item.get("upstream_name") or public).strip(),
            context_window=int(item.get("context_window") or 8192),
            input_price_per_mtok=_decimal(item.get("input_price_per_mtok", 0), "the input price", index),
            output_price_per_mtok=_decimal(item.get("output_price_per_mtok", 0), "the output price", index),
            capabilities=capabilities,
        )
        try:
            offering.full_clean(exclude=["version"])
        except ValidationError as error:
            raise ValidationError({"models": [f"Model {public!r}: {m}" for m in error.messages]}) from None
        offerings.append(offering)
    if not offerings:
        raise ValidationError({"models": "List at least one model."})
    version.models.all().delete()
    ModelOffering.objects.bulk_create(offerings)
    _touch(version, actor, "version.set_models", {"models": sorted(seen)})
    return version


def _store_tools(version: ProductVersion, tools: Iterable[McpTool]) -> int:
    version.tools.all().delete()
    return len(McpTool.objects.bulk_create(tools))


def version_discover_mcp(*, actor: User, version: ProductVersion) -> ProductVersion:
    """Connect to a remote MCP server with the `mcp` SDK and store its tools, resources
    and prompts (following pagination). The refresh button calls this again."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    _require_kind(version, Product.Kind.MCP_SERVER)
    if version.mcp_transport == ProductVersion.McpTransport.REST_TO_MCP:
        raise ValidationError("A REST-to-MCP server's tools come from its definition, not from discovery.")
    if not version.upstream_url:
        raise ValidationError({"upstream_url": "Set the MCP server's URL first."})
    _check_upstream_url(version.upstream_url)
    headers = _upstream_headers(version)
    # The network call runs outside any transaction: no lock is held while we wait.
    try:
        discovery = discover_mcp_server_sync(
            version.upstream_url,
            transport="sse" if version.mcp_transport == ProductVersion.McpTransport.SSE else "streamable_http",
            headers=headers,
            timeout=DISCOVERY_TIMEOUT_S,
            httpx_client_factory=outbound.guarded_async_client_factory(),
        )
    except SpecError as error:
        raise _spec_error(error, "upstream_url") from None
    with transaction.atomic():
        locked = ProductVersion.objects.select_for_update().get(pk=version.pk)
        _require_draft(locked)
        tools = [
            McpTool(
                version=locked,
                name=tool.name,
                title=(tool.title or "")[:200],
                description=tool.description or "",
                input_schema=tool.input_schema or {"type": "object"},
                output_schema=tool.output_schema,
                annotations=tool.annotations or {},
            )
            for tool in discovery.tools
        ]
        count = _store_tools(locked, tools)
        locked.spec = {
            "server_info": dataclasses.asdict(discovery.server),
            "resources": [dataclasses.asdict(r) for r in discovery.resources],
            "resource_templates": [dataclasses.asdict(r) for r in discovery.resource_templates],
            "prompts": [dataclasses.asdict(p) for p in discovery.prompts],
            "truncated": list(discovery.truncated),
            "discovered_at": timezone.now().isoformat(),
        }
        _touch(
            locked,
            actor,
            "version.discover_mcp",
            {"tools": count, "resources": len(discovery.resources), "prompts": len(discovery.prompts)},
        )
    version.refresh_from_db()
    return version


def _upstream_headers(version: ProductVersion) -> dict[str, str]:
    if version.upstream_auth_header and version.upstream_secret_encrypted:
        return {version.upstream_auth_header: secret_decrypt(version.upstream_secret_encrypted)}
    return {}


def _tool_rows(version: ProductVersion, tools: Iterable[RestToMcpTool]) -> list[McpTool]:
    """McpTool rows whose ``request_template`` holds the whole REST mapping of the tool
    (``RestToMcpTool.to_dict()``), from which the gateway renders each call."""
    return [
        McpTool(
            version=version,
            name=tool.name,
            description=tool.description or "",
            input_schema=tool.input_schema,
            output_schema=tool.output_schema,
            request_template=tool.to_dict(),
            response_template=tool.response_template or "",
        )
        for tool in tools
    ]


@transaction.atomic
def version_set_rest_to_mcp(
    *,
    actor: User,
    version: ProductVersion,
    definition: Mapping[str, Any] | None = None,
    higress_yaml: str | None = None,
    from_openapi: str | None = None,
) -> ProductVersion:
    """Define a REST-to-MCP server's tools: from our JSON definition, from a Higress
    REST-to-MCP YAML document, or one tool per operation of an OpenAPI document."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    _require_kind(version, Product.Kind.MCP_SERVER)
    given = [x is not None for x in (definition, higress_yaml, from_openapi)]
    if sum(given) != 1:
        raise ValidationError({"definition": "Give exactly one of: a definition, Higress YAML, an OpenAPI document."})
    try:
        if definition is not None:
            server = validate_definition(dict(definition))
        elif higress_yaml is not None:
            server = import_higress_yaml(higress_yaml)
        else:
            assert from_openapi is not None  # noqa: S101 (narrowing)
            spec = parse_openapi(from_openapi, max_bytes=MAX_DOCUMENT_BYTES)
            base = spec.servers[0].default_url if spec.servers else ""
            # A relative server URL ("/api/v3") leaves the base to the version's upstream URL.
            base = base if base.startswith(("http://", "https://")) else ""
            generated = RestToMcpServer(name=version.product.slug, base_url=base, tools=tools_from_openapi(spec))
            server = validate_definition(generated.to_dict())
    except SpecError as error:
        raise _spec_error(error, "definition") from None
    if not server.tools:
        raise ValidationError({"definition": "The definition has no tools."})
    if server.base_url and not version.upstream_url:
        _check_upstream_url(server.base_url, "definition")
        version.upstream_url = server.base_url
    version.mcp_transport = ProductVersion.McpTransport.REST_TO_MCP
    # The server's template config may hold API keys: it is stored encrypted.
    version.spec = {
        "rest_to_mcp": {
            "name": server.name,
            "base_url": server.base_url,
            "config_encrypted": secret_encrypt(json.dumps(server.config)) if server.config else "",
        }
    }
    count = _store_tools(version, _tool_rows(version, server.tools))
    _touch(version, actor, "version.set_rest_to_mcp", {"tools": count})
    return version


@transaction.atomic
def version_set_agent_card(
    *, actor: User, version: ProductVersion, card: str | None = None, url: str | None = None
) -> ProductVersion:
    """Set an agent version's A2A agent card, pasted or fetched (a base URL fetches its
    /.well-known/agent-card.json)."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    _require_kind(version, Product.Kind.AGENT)
    if url and "/.well-known/" not in url:
        url = url.rstrip("/") + "/.well-known/agent-card.json"
    source, source_url = _document_text(card, url, "agent_card")
    try:
        parsed = parse_agent_card(source)
    except SpecError as error:
        raise _spec_error(error, "agent_card") from None
    version.spec = {"agent_card": parsed.document}
    version.spec_source_url = source_url
    if parsed.url:
        _check_upstream_url(parsed.url, "agent_card")
        version.upstream_url = parsed.url
    _touch(version, actor, "version.set_agent_card", {"name": parsed.name, "source_url": source_url})
    return version


@transaction.atomic
def version_delete(*, actor: User, version: ProductVersion) -> None:
    """Delete a draft."""
    require_role(actor, version.product.organization, Role.MEMBER)
    _require_draft(version)
    audit_record(
        actor=actor,
        action="version.delete",
        target=version,
        organization=version.product.organization,
        changes={"version": version.version},
    )
    version.delete()
