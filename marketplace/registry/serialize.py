"""A version of an MCP-server product as the official registry shows it.

``server_entry`` gives the registry's response item ``{"server": <server.json>,
"_meta": {...}}``: the server.json describes how to reach the server *through our
gateway* (never the provider's upstream), registry metadata sits under the official
key of the envelope's ``_meta``, and our own data under ``<REGISTRY_NAMESPACE>/platform``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.urls import NoReverseMatch, reverse

from marketplace.models import Product, ProductVersion
from marketplace.registry.schema import SCHEMA_URL

OFFICIAL_META = "io.modelcontextprotocol.registry/official"
DESCRIPTION_MAX = 100
TITLE_MAX = 100
ICON_SRC_MAX = 255

_STATUS = {
    ProductVersion.Status.PUBLISHED: "active",
    ProductVersion.Status.DEPRECATED: "deprecated",
    ProductVersion.Status.RETIRED: "deleted",
}


def namespace() -> str:
    return str(settings.REGISTRY_NAMESPACE)


def platform_meta_key() -> str:
    return f"{namespace()}/platform"


def server_name(slug: str) -> str:
    return f"{namespace()}/{slug}"


def slug_from_server_name(name: str) -> str | None:
    """The product slug a server name of ours stands for; None for any other name."""
    prefix = f"{namespace()}/"
    if not name.startswith(prefix):
        return None
    slug = name[len(prefix) :]
    return slug if slug and "/" not in slug else None


def rfc3339(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def clip(text: str, limit: int) -> str:
    """``text`` on one line, at most ``limit`` characters (an ellipsis marks a cut)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def catalog_url(product: Product) -> str:
    return f"{settings.PORTAL_URL}{reverse('product_page', args=[product.slug])}"


def gateway_url(product: Product) -> str:
    return f"{settings.GATEWAY_URL}/mcp/{product.slug}"


def _icons(product: Product) -> list[dict[str, Any]]:
    """The schema requires an https icon URL of at most 255 characters: a portal served
    over plain http (a development setup) lists no icon rather than an invalid one."""
    if not product.icon_content_type or not str(settings.PORTAL_URL).startswith("https://"):
        return []
    try:
        src = f"{settings.PORTAL_URL}{reverse('api-product-icon', args=[product.slug])}"
    except NoReverseMatch:  # the provider API is not mounted in this deployment
        return []
    if len(src) > ICON_SRC_MAX:
        return []
    return [{"src": src, "mimeType": product.icon_content_type}]


def server_json(version: ProductVersion) -> dict[str, Any]:
    product = version.product
    server: dict[str, Any] = {
        "$schema": SCHEMA_URL,
        "name": server_name(product.slug),
        "description": clip(product.summary, DESCRIPTION_MAX) or clip(product.name, DESCRIPTION_MAX),
        "title": clip(product.name, TITLE_MAX),
        "version": version.version,
        "websiteUrl": catalog_url(product),
    }
    icons = _icons(product)
    if icons:
        server["icons"] = icons
    server["remotes"] = [
        {
            "type": "streamable-http",
            "url": gateway_url(product),
            "headers": [
                {
                    "name": "Authorization",
                    "description": "Bearer <your app key>",
                    "isRequired": True,
                    "isSecret": True,
                }
            ],
        }
    ]
    return server


def updated_at(version: ProductVersion) -> dt.datetime:
    """The entry changes when the version does (its status, above all) and when the
    product's catalog data does (name, summary, icon)."""
    return max(version.updated_at, version.product.updated_at)


def official_meta(version: ProductVersion, *, is_latest: bool) -> dict[str, Any]:
    published = version.published_at or version.created_at
    meta: dict[str, Any] = {
        "status": _STATUS.get(ProductVersion.Status(version.status), "deleted"),
        "publishedAt": rfc3339(published),
        "updatedAt": rfc3339(updated_at(version)),
        "isLatest": is_latest,
    }
    changed = {
        ProductVersion.Status.DEPRECATED: version.deprecated_at,
        ProductVersion.Status.RETIRED: version.retired_at,
    }.get(ProductVersion.Status(version.status), version.published_at)
    if changed is not None:
        meta["statusChangedAt"] = rfc3339(changed)
    if version.status == ProductVersion.Status.DEPRECATED and version.sunset_at is not None:
        meta["statusMessage"] = f"Deprecated: this version is retired on {rfc3339(version.sunset_at)}."
    return meta


def platform_meta(version: ProductVersion) -> dict[str, Any]:
    product = version.product
    tool_names = [tool.name for tool in version.tools.all()]
    return {
        "productSlug": product.slug,
        "kind": product.kind,
        "upstreamTransport": version.mcp_transport,
        "toolsCount": len(tool_names),
        "tools": tool_names,
        "provider": {"slug": product.organization.slug, "name": product.organization.name},
        "catalogUrl": catalog_url(product),
        "sunsetAt": rfc3339(version.sunset_at) if version.sunset_at else None,
    }


def server_entry(version: ProductVersion, *, is_latest: bool) -> dict[str, Any]:
    """The registry's response item for ``version`` (its product, organization and
    tools should be loaded with it: see registry.selectors)."""
    return {
        "server": server_json(version),
        "_meta": {
            OFFICIAL_META: official_meta(version, is_latest=is_latest),
            platform_meta_key(): platform_meta(version),
        },
    }
