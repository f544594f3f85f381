"""Import MCP servers from a document in the official registry's shape.

``registry_import`` takes a single server.json, a ``{"server": ..., "_meta": ...}`` entry,
or a list response (``{"servers": [...]}``), and makes each remote server a *draft*
MCP-server product of the organization, through the marketplace services: the provider
then discovers its tools and submits it for review, as for any other product.

Each entry stands alone: it is validated against the official schema, then created in
its own transaction, so a bad entry leaves nothing behind and does not stop the others.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Organization, Role, User
from accounts.services import require_role
from marketplace import services
from marketplace.models import Product, ProductVersion
from marketplace.registry.schema import json_path, server_errors
from marketplace.registry.serialize import OFFICIAL_META, clip

MAX_DOCUMENT_CHARS = 2_000_000
MAX_ENTRIES = 100
SLUG_MAX = 50
_SEMVER_RE = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
_TRANSPORTS = {
    "streamable-http": ProductVersion.McpTransport.STREAMABLE_HTTP,
    "sse": ProductVersion.McpTransport.SSE,
}


@dataclass(frozen=True)
class ImportedServer:
    index: int
    name: str
    version: str
    product_slug: str
    upstream_url: str
    transport: str
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SkippedServer:
    index: int
    name: str
    reason: str


@dataclass(frozen=True)
class EntryError:
    index: int
    name: str
    errors: list[str]


@dataclass
class ImportResult:
    created: list[ImportedServer] = field(default_factory=list)
    skipped: list[SkippedServer] = field(default_factory=list)
    errors: list[EntryError] = field(default_factory=list)


@dataclass
class _Entry:
    index: int
    prefix: str  # where the server.json sits in the document: "servers[2].server"
    server: Any
    meta: Any = None

    @property
    def name(self) -> str:
        name = self.server.get("name") if isinstance(self.server, dict) else None
        return name if isinstance(name, str) else ""

    def path(self, *parts: str | int) -> str:
        return json_path(parts, self.prefix)


def _entries(document: dict[str, Any] | list[Any] | str) -> list[_Entry]:
    """The server.json documents in ``document``, or ValidationError when it has none
    of the accepted shapes."""
    if isinstance(document, str):
        if len(document) > MAX_DOCUMENT_CHARS:
            raise ValidationError({"document": f"The document is longer than {MAX_DOCUMENT_CHARS:,} characters."})
        try:
            document = json.loads(document)
        except ValueError as error:
            raise ValidationError({"document": f"The document is not valid JSON: {error}."}) from None
    if isinstance(document, dict) and "servers" in document:
        items, prefix = document["servers"], "servers"
        if not isinstance(items, list):
            raise ValidationError({"document": "servers must be a list."})
    elif isinstance(document, list):
        items, prefix = document, ""
    elif isinstance(document, dict):
        items, prefix = [document], None
    else:
        raise ValidationError(
            {"document": "Give a server.json object, a {server, _meta} entry or a {servers: [...]} list."}
        )
    if not items:
        raise ValidationError({"document": "The document lists no servers."})
    if len(items) > MAX_ENTRIES:
        raise ValidationError({"document": f"At most {MAX_ENTRIES} servers per import; this lists {len(items)}."})
    entries = []
    for index, item in enumerate(items):
        base = f"{prefix}[{index}]" if prefix is not None else ""
        if isinstance(item, dict) and "server" in item:
            entries.append(_Entry(index, json_path(["server"], base), item["server"], item.get("_meta")))
        else:
            entries.append(_Entry(index, base, item))
    return entries


def _nul_errors(value: Any, parts: list[str | int], prefix: str) -> list[str]:
    """Where a string holds a NUL character, which no database text column can store."""
    if isinstance(value, str):
        return [f"{json_path(parts, prefix)}: contains a NUL character"] if "\x00" in value else []
    if isinstance(value, dict):
        errors = [f"{json_path(parts, prefix)}: a key contains a NUL character" for k in value if "\x00" in str(k)]
        return errors + [e for k, v in value.items() for e in _nul_errors(v, [*parts, str(k)], prefix)]
    if isinstance(value, list):
        return [e for i, v in enumerate(value) for e in _nul_errors(v, [*parts, i], prefix)]
    return []


def _remote(entry: _Entry) -> tuple[int, dict[str, Any]] | None:
    """The remote the gateway would proxy: the first streamable-http one, else SSE."""
    remotes = [r for r in entry.server.get("remotes") or [] if isinstance(r, dict)]
    for wanted in _TRANSPORTS:
        for index, remote in enumerate(remotes):
            if remote.get("type") == wanted:
                return index, remote
    return None


def _skip_reason(entry: _Entry, chosen: tuple[int, dict[str, Any]] | None) -> str | None:
    if chosen is None:
        packages = [p for p in entry.server.get("packages") or [] if isinstance(p, dict)]
        if packages:
            kinds = ", ".join(sorted({str(p.get("registryType", "?")) for p in packages}))
            return (
                f"It runs locally from a package ({kinds}) and has no remote; the gateway proxies remote servers only."
            )
        return "It has no streamable-http or sse remote to proxy."
    index, remote = chosen
    url = str(remote["url"])
    if "{" in url:
        return f"{entry.path('remotes', index, 'url')} is a template ({url}); register it with a concrete URL."
    if url.rstrip("/").startswith(f"{settings.GATEWAY_URL}/"):
        return "Its remote is this platform's own gateway: the server is already in our catalog."
    return None


def _version_key(entry: _Entry) -> tuple[int, ...]:
    """Orders a server's entries: the one the document marks latest, then releases
    before pre-releases, then by semantic version."""
    official = entry.meta.get(OFFICIAL_META) if isinstance(entry.meta, dict) else None
    latest = 1 if isinstance(official, dict) and official.get("isLatest") is True else 0
    match = _SEMVER_RE.match(str(entry.server.get("version", "")).lstrip("vV"))
    numbers = tuple(int(n) for n in match.groups()[:3]) if match else (-1, -1, -1)
    release = 1 if match and match.group(4) is None else 0
    return (latest, release, *numbers)


def _duplicate_reason(kept: _Entry, dropped: _Entry) -> str:
    if kept.server.get("version") == dropped.server.get("version"):
        return f"{kept.path()} lists the same server and version; it is imported once."
    return f"{kept.path()} is the latest version of this server in the document; only that one is imported."


def _slug_base(name: str) -> str:
    last = name.rsplit("/", 1)[-1].lower()
    slug = re.sub(r"[^a-z0-9]+", "-", last).strip("-")[:SLUG_MAX].strip("-")
    return slug or "mcp-server"


def _unique_slug(name: str) -> str:
    """The name's last segment as a slug, with -2, -3... when it is taken (slugs are
    global: they name the product in gateway URLs)."""
    base = _slug_base(name)
    taken = set(Product.objects.filter(slug__startswith=base[: SLUG_MAX - 4]).values_list("slug", flat=True))
    if base not in taken:
        return base
    for number in range(2, 1000):
        suffix = f"-{number}"
        candidate = f"{base[: SLUG_MAX - len(suffix)].rstrip('-')}{suffix}"
        if candidate not in taken:
            return candidate
    raise ValidationError({"slug": f"Too many products are named like {base}."})


def _description(server: Mapping[str, Any]) -> str:
    lines = [f"Imported from the MCP registry entry `{server['name']}`, version {server['version']}."]
    if isinstance(server.get("websiteUrl"), str):
        lines.append(f"Website: <{server['websiteUrl']}>")
    repository = server.get("repository")
    if isinstance(repository, dict) and isinstance(repository.get("url"), str):
        lines.append(f"Source code: <{repository['url']}>")
    return "\n\n".join(lines)


def _header_notes(remote: Mapping[str, Any]) -> list[str]:
    notes = []
    for header in remote.get("headers") or []:
        if isinstance(header, dict) and header.get("isRequired"):
            secret = " (a secret)" if header.get("isSecret") else ""
            notes.append(f"The server expects the header {header.get('name')}{secret}: set the upstream credentials.")
    return notes


def _field_errors(error: ValidationError, entry: _Entry, remote_index: int) -> list[str]:
    """A service's ValidationError, with each field named by where it came from."""
    where = {
        "slug": entry.path("name"),
        "name": entry.path("title"),
        "summary": entry.path("description"),
        "version": entry.path("version"),
        "upstream_url": entry.path("remotes", remote_index, "url"),
        "mcp_transport": entry.path("remotes", remote_index, "type"),
    }
    if not hasattr(error, "error_dict"):
        return [f"{entry.path()}: {message}" for message in error.messages]
    return [
        f"{where.get(key, entry.path() if key == NON_FIELD_ERRORS else entry.path(key))}: {message}"
        for key, messages in error.message_dict.items()
        for message in messages
    ]


def _create(
    actor: User, organization: Organization, entry: _Entry, remote_index: int, remote: dict[str, Any]
) -> ImportedServer:
    server = entry.server
    name = str(server["name"])
    version = str(server["version"])
    if _SEMVER_RE.match(version.lstrip("vV")) and version[:1] in {"v", "V"}:
        version = version[1:]
    with transaction.atomic():
        product = services.product_create(
            actor=actor,
            organization=organization,
            kind=Product.Kind.MCP_SERVER,
            slug=_unique_slug(name),
            name=clip(str(server.get("title") or name.rsplit("/", 1)[-1]), 100),
            summary=clip(str(server["description"]), 200),
            description=_description(server),
        )
        draft = services.version_create(
            actor=actor, product=product, version=version, changelog=f"Imported from the MCP registry ({name})."
        )
        services.version_update(
            actor=actor, version=draft, upstream_url=str(remote["url"]), mcp_transport=_TRANSPORTS[remote["type"]]
        )
    return ImportedServer(
        index=entry.index,
        name=name,
        version=draft.version,
        product_slug=product.slug,
        upstream_url=draft.upstream_url,
        transport=draft.mcp_transport,
        notes=_header_notes(remote),
    )


def registry_import(
    *, actor: User, organization: Organization, document: dict[str, Any] | list[Any] | str
) -> ImportResult:
    """Create a draft MCP-server product for each importable server in ``document``.

    1. The actor must be a member of the organization (PermissionDenied otherwise); a
       document of no accepted shape raises ValidationError and imports nothing.
    2. An entry that breaks the server.json schema goes to ``errors``, each line naming
       the path of what is wrong (``servers[2].server.remotes[0].url: ...``).
    3. An entry with no remote (only packages, run locally), a templated URL or a
       remote on our own gateway is ``skipped``, with the reason; so are other versions
       of a server listed twice (the latest is imported), and servers whose URL the
       organization already has a product for.
    4. Each remaining entry becomes a product, a draft version, and its upstream, in
       one transaction; a refusal by the services (a slug, a version that is not
       semantic, an upstream URL the SSRF policy refuses) goes to ``errors``.
    """
    require_role(actor, organization, Role.MEMBER)
    result = ImportResult()
    for entry, remote_index, remote in _importable(_entries(document), result):
        existing = (
            Product.objects.filter(organization=organization, versions__upstream_url=str(remote["url"]).strip())
            .values_list("slug", flat=True)
            .first()
        )
        if existing is not None:
            reason = f"The organization's product {existing} already has this URL."
            result.skipped.append(SkippedServer(entry.index, entry.name, reason))
            continue
        try:
            result.created.append(_create(actor, organization, entry, remote_index, remote))
        except ValidationError as error:
            result.errors.append(EntryError(entry.index, entry.name, _field_errors(error, entry, remote_index)))
        except IntegrityError:
            message = f"{entry.path('name')}: another import took the same product slug meanwhile; import it again."
            result.errors.append(EntryError(entry.index, entry.name, [message]))
    result.skipped.sort(key=lambda skipped: skipped.index)
    result.errors.sort(key=lambda error: error.index)
    return result


def _importable(entries: list[_Entry], result: ImportResult) -> list[tuple[_Entry, int, dict[str, Any]]]:
    """The valid entries with a remote to proxy, one per server name, in document order
    (with the remote's index and the remote); the others go to ``result``."""
    candidates: dict[str, tuple[_Entry, int, dict[str, Any]]] = {}
    for entry in entries:
        problems = server_errors(entry.server, entry.prefix) or _nul_errors(entry.server, [], entry.prefix)
        if problems:
            result.errors.append(EntryError(entry.index, entry.name, problems))
            continue
        chosen = _remote(entry)
        reason = _skip_reason(entry, chosen)
        if reason is not None or chosen is None:
            result.skipped.append(SkippedServer(entry.index, entry.name, reason or ""))
            continue
        earlier = candidates.get(entry.name)
        if earlier is not None:
            newer = _version_key(entry) > _version_key(earlier[0])
            kept, dropped = (entry, earlier[0]) if newer else (earlier[0], entry)
            result.skipped.append(SkippedServer(dropped.index, dropped.name, _duplicate_reason(kept, dropped)))
            if not newer:
                continue
        candidates[entry.name] = (entry, *chosen)
    return sorted(candidates.values(), key=lambda candidate: candidate[0].index)
