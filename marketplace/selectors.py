"""Reads with rules: what the catalog shows to whom, and what a provider may manage."""

from __future__ import annotations

from django.db.models import Exists, F, OuterRef, Prefetch, Q, QuerySet
from django.http import Http404

from accounts.models import Membership, Organization, User
from marketplace.models import Category, Product, ProductVersion

LIVE = ProductVersion.LIVE_STATUSES


def _live_version_exists() -> Exists:
    return Exists(ProductVersion.objects.filter(product=OuterRef("pk"), status__in=LIVE))


def catalog_products(user: User | None) -> QuerySet[Product]:
    """Products with at least one published or deprecated version that ``user`` (None
    or anonymous: anyone) may see: public ones, and private ones of their organizations."""
    visible = Q(visibility=Product.Visibility.PUBLIC)
    if user is not None and user.is_authenticated:
        visible |= Q(organization__memberships__user=user)
    return (
        Product.objects.filter(visible)
        .filter(_live_version_exists())
        .select_related("organization")
        .prefetch_related("categories")
        .distinct()
    )


def catalog_filter(
    products: QuerySet[Product], *, kind: str = "", category: str = "", provider: str = ""
) -> QuerySet[Product]:
    if kind:
        products = products.filter(kind=kind)
    if category:
        products = products.filter(categories__slug=category)
    if provider:
        products = products.filter(organization__slug=provider)
    return products


def catalog_product_get(user: User | None, slug: str) -> Product:
    try:
        return catalog_products(user).get(slug=slug)
    except Product.DoesNotExist:
        raise Http404("No such product") from None


def live_versions(product: Product) -> QuerySet[ProductVersion]:
    return product.versions.filter(status__in=LIVE).order_by(F("published_at").desc(nulls_last=True), "-pk")


def latest_live_version(product: Product) -> ProductVersion | None:
    return live_versions(product).prefetch_related("operations", "models", Prefetch("tools")).first()


def catalog_providers() -> QuerySet[Organization]:
    return Organization.objects.filter(
        Exists(
            Product.objects.filter(organization=OuterRef("pk"), visibility=Product.Visibility.PUBLIC).filter(
                _live_version_exists()
            )
        )
    )


def categories() -> QuerySet[Category]:
    return Category.objects.all()


def provider_products(organization: Organization) -> QuerySet[Product]:
    return Product.objects.filter(organization=organization).prefetch_related("versions", "categories")


def provider_product_get(user: User, slug: str) -> Product:
    """A product the user may manage or (staff) inspect; Http404 for everyone else, who
    must not learn that an unpublished product exists."""
    products = Product.objects.select_related("organization")
    if not user.is_staff:
        products = products.filter(Exists(Membership.objects.filter(organization=OuterRef("organization"), user=user)))
    try:
        return products.get(slug=slug)
    except Product.DoesNotExist:
        raise Http404("No such product") from None


def provider_version_get(product: Product, version_id: int) -> ProductVersion:
    try:
        return product.versions.select_related("product__organization").get(pk=version_id)
    except ProductVersion.DoesNotExist:
        raise Http404("No such version") from None


def review_queue() -> QuerySet[ProductVersion]:
    return (
        ProductVersion.objects.filter(status=ProductVersion.Status.IN_REVIEW)
        .select_related("product__organization")
        .order_by("submitted_at")
    )
