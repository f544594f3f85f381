"""Products: their identity and catalog data."""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import Organization, Role, User
from accounts.services import audit_record, require_role
from gateway_sync.services import config_mark_changed
from marketplace.models import Category, Product, ProductVersion
from marketplace.signals import product_created

TAG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,29}$")
MAX_TAGS = 10
MAX_ICON_BYTES = 64 * 1024
# Raster formats only: an SVG from a provider could carry script.
ICON_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}


def clean_tags(tags: Iterable[str]) -> list[str]:
    cleaned: list[str] = []
    for raw in tags:
        tag = raw.strip().lower()
        if not tag:
            continue
        if not TAG_RE.match(tag):
            raise ValidationError({"tags": f"Tag {raw!r}: use up to 30 lowercase letters, digits and hyphens."})
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise ValidationError({"tags": f"At most {MAX_TAGS} tags."})
    return cleaned


def _categories(slugs: Iterable[str]) -> list[Category]:
    wanted = list(dict.fromkeys(slugs))
    found = list(Category.objects.filter(slug__in=wanted))
    unknown = sorted(set(wanted) - {category.slug for category in found})
    if unknown:
        raise ValidationError({"categories": f"Unknown categories: {', '.join(unknown)}."})
    return found


@transaction.atomic
def product_create(
    *,
    actor: User,
    organization: Organization,
    kind: str,
    slug: str,
    name: str,
    summary: str,
    description: str = "",
    categories: Iterable[str] = (),
    tags: Iterable[str] = (),
    visibility: str = Product.Visibility.PUBLIC,
) -> Product:
    """Register a product of ``organization``. Any member may; it appears in the catalog
    only once a version of it is published."""
    require_role(actor, organization, Role.MEMBER)
    product = Product(
        organization=organization,
        kind=kind,
        slug=slug.strip().lower(),
        name=name.strip(),
        summary=summary.strip(),
        description=description,
        tags=clean_tags(tags),
        visibility=visibility,
        created_by=actor,
    )
    product.full_clean()
    product.save()
    product.categories.set(_categories(categories))
    product_created.send(sender=Product, product=product, actor=actor)
    audit_record(
        actor=actor,
        action="product.create",
        target=product,
        organization=organization,
        changes={"kind": kind, "slug": product.slug, "name": product.name},
    )
    return product


@transaction.atomic
def product_update(
    *,
    actor: User,
    product: Product,
    name: str | None = None,
    summary: str | None = None,
    description: str | None = None,
    categories: Iterable[str] | None = None,
    tags: Iterable[str] | None = None,
    visibility: str | None = None,
) -> Product:
    """Change catalog data. The kind and slug never change: gateway URLs use the slug."""
    require_role(actor, product.organization, Role.MEMBER)
    changes: dict[str, object] = {}
    for field, value in (
        ("name", name),
        ("summary", summary),
        ("description", description),
        ("visibility", visibility),
    ):
        if value is not None:
            value = value.strip() if field != "description" else value
            if getattr(product, field) != value:
                changes[field] = value if field != "description" else "(changed)"
                setattr(product, field, value)
    if tags is not None:
        cleaned = clean_tags(tags)
        if cleaned != product.tags:
            changes["tags"] = cleaned
            product.tags = cleaned
    product.full_clean()
    product.save()
    if categories is not None:
        chosen = _categories(categories)
        if {c.pk for c in chosen} != set(product.categories.values_list("pk", flat=True)):
            product.categories.set(chosen)
            changes["categories"] = sorted(c.slug for c in chosen)
    if "visibility" in changes:
        config_mark_changed(reason=f"product {product.slug} visibility")
    if changes:
        audit_record(
            actor=actor, action="product.update", target=product, organization=product.organization, changes=changes
        )
    return product


@transaction.atomic
def product_set_icon(*, actor: User, product: Product, data: bytes | None) -> Product:
    """Set (PNG or JPEG, at most 64 KiB) or clear (None) the product's icon."""
    require_role(actor, product.organization, Role.MEMBER)
    if data is None:
        product.icon, product.icon_content_type = None, ""
    else:
        if len(data) > MAX_ICON_BYTES:
            raise ValidationError({"icon": f"The icon is larger than {MAX_ICON_BYTES // 1024} KiB."})
        content_type = next((ct for sig, ct in ICON_SIGNATURES.items() if data.startswith(sig)), None)
        if content_type is None:
            raise ValidationError({"icon": "Upload a PNG or JPEG image."})
        product.icon, product.icon_content_type = data, content_type
    product.save(update_fields=["icon", "icon_content_type", "updated_at"])
    audit_record(
        actor=actor,
        action="product.set_icon",
        target=product,
        organization=product.organization,
        changes={"icon": product.icon_content_type or None},
    )
    return product


@transaction.atomic
def product_delete(*, actor: User, product: Product) -> None:
    """Delete a product that was never published. A published one is retired instead,
    so that its subscribers' history stays."""
    require_role(actor, product.organization, Role.ADMIN)
    if product.versions.exclude(status__in=[ProductVersion.Status.DRAFT, ProductVersion.Status.IN_REVIEW]).exists():
        raise ValidationError("A product with published versions cannot be deleted; retire its versions instead.")
    audit_record(
        actor=actor,
        action="product.delete",
        target=product,
        organization=product.organization,
        changes={"slug": product.slug},
    )
    product.delete()
