"""What the registry API lists: versions of public MCP-server products.

A version is listed when the catalog would show it to anyone (its product is public and
the version published or deprecated; see marketplace.selectors), plus, on request,
retired versions of public MCP servers, shown as "deleted" so that mirrors learn to drop
them. "Latest" is the version the catalog shows first (``latest_live_version``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import BooleanField, Case, CharField, OuterRef, Prefetch, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Concat

from marketplace import selectors
from marketplace.models import McpTool, Product, ProductVersion
from marketplace.registry.serialize import namespace, slug_from_server_name

Status = ProductVersion.Status


def _statuses(include_deleted: bool) -> tuple[str, ...]:
    return (*ProductVersion.LIVE_STATUSES, Status.RETIRED) if include_deleted else tuple(ProductVersion.LIVE_STATUSES)


def registry_products(*, include_deleted: bool = False) -> QuerySet[Product]:
    """Public MCP servers with a live version (the catalog's rule for anonymous
    visitors); with ``include_deleted``, also those whose versions are all retired."""
    live = selectors.catalog_products(None).filter(kind=Product.Kind.MCP_SERVER)
    if not include_deleted:
        return live
    retired = Product.objects.filter(
        visibility=Product.Visibility.PUBLIC, kind=Product.Kind.MCP_SERVER, versions__status=Status.RETIRED
    )
    return Product.objects.filter(Q(pk__in=live.values("pk")) | Q(pk__in=retired.values("pk")))


def _latest_live_pk() -> Subquery:
    # The same order as marketplace.selectors.live_versions.
    return Subquery(
        ProductVersion.objects.filter(product=OuterRef("product"), status__in=ProductVersion.LIVE_STATUSES)
        .order_by("-published_at", "-pk")
        .values("pk")[:1]
    )


def registry_versions(*, include_deleted: bool = False) -> QuerySet[ProductVersion]:
    """Listed versions, each annotated with ``is_latest``, loaded with what
    serialize.server_entry reads (and not the icon's bytes or the spec)."""
    return (
        ProductVersion.objects.filter(
            product__in=registry_products(include_deleted=include_deleted), status__in=_statuses(include_deleted)
        )
        .annotate(
            is_latest=Case(
                When(pk=_latest_live_pk(), then=Value(True)), default=Value(False), output_field=BooleanField()
            ),
        )
        .select_related("product__organization")
        .defer("spec", "product__icon", "product__description")
        .prefetch_related(Prefetch("tools", queryset=McpTool.objects.only("pk", "version_id", "name").order_by("name")))
    )


@dataclass(frozen=True)
class ListFilters:
    search: str = ""
    updated_since: dt.datetime | None = None
    version: str = ""  # "latest" or an exact version
    include_deleted: bool = False


@dataclass(frozen=True)
class Position:
    """A keyset position in the list's order (product slug, then version string)."""

    slug: str
    version: str


def registry_list(filters: ListFilters, *, after: Position | None, limit: int) -> tuple[list[ProductVersion], bool]:
    """One page of the list, in (slug, version) order, and whether more follow. The
    order is on unique columns, so a page starts exactly after ``after`` however many
    servers were added or removed meanwhile."""
    versions = registry_versions(include_deleted=filters.include_deleted)
    if filters.search:
        versions = versions.annotate(
            server_name=Concat(Value(f"{namespace()}/"), "product__slug", output_field=CharField())
        ).filter(server_name__icontains=filters.search)
    if filters.updated_since is not None:
        since = filters.updated_since
        versions = versions.filter(Q(updated_at__gte=since) | Q(product__updated_at__gte=since))
    if filters.version == "latest":
        versions = versions.filter(pk=_latest_live_pk())
    elif filters.version:
        versions = versions.filter(version=filters.version)
    if after is not None:
        versions = versions.filter(
            Q(product__slug__gt=after.slug) | Q(product__slug=after.slug, version__gt=after.version)
        )
    page = list(versions.order_by("product__slug", "version")[: limit + 1])
    return page[:limit], len(page) > limit


def server_versions(name: str, *, include_deleted: bool = False) -> list[ProductVersion]:
    """Every listed version of the server ``name``, newest first (empty: no such server)."""
    slug = slug_from_server_name(name)
    if slug is None:
        return []
    versions = registry_versions(include_deleted=include_deleted).filter(product__slug=slug)
    return list(versions.order_by("-published_at", "-pk"))


def server_version(name: str, version: str, *, include_deleted: bool = False) -> ProductVersion | None:
    """One listed version of the server ``name``; ``latest`` is its latest live one."""
    slug = slug_from_server_name(name)
    if slug is None:
        return None
    versions = registry_versions(include_deleted=include_deleted).filter(product__slug=slug)
    versions = versions.filter(pk=_latest_live_pk()) if version == "latest" else versions.filter(version=version)
    return versions.first()
