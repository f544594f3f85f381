"""What the consumers views share: resolving ``{app_id}``, ``{slug}`` and ``{plan_id}``
for the user. Outsiders get 404 from these (they must not learn that an app, an
unpublished product or an archived plan exists); the services check the role each
action needs, so members lacking it get 403."""

from __future__ import annotations

from django.http import Http404
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.auth import request_user
from accounts.models import User
from accounts.selectors import membership_of
from consumers import selectors
from consumers.models import ConsumerApp, Plan
from marketplace import selectors as marketplace_selectors
from marketplace.models import Product


def viewer(request: Request) -> User | None:
    """The signed-in user, or None for an anonymous one (on the views open to anyone)."""
    return request_user(request) if request.user.is_authenticated else None


class AppScopedView(APIView):
    """Resolves ``{app_id}`` to an app of the user's organizations (any app, for staff,
    who may inspect)."""

    def get_app(self) -> ConsumerApp:
        return selectors.app_get_for_user(request_user(self.request), self.kwargs["app_id"])


def _is_provider_side(user: User | None, product: Product) -> bool:
    """Whether ``user`` belongs to the product's organization or is staff: they see its
    archived plans, and its plans while it is not in the catalog."""
    if user is None:
        return False
    return user.is_staff or membership_of(user, product.organization) is not None


def plans_product_get(request: Request, slug: str) -> tuple[Product, bool]:
    """The product whose plans the user may read, and whether they may see archived
    ones: anyone may read the plans of a product in the catalog (as the catalog shows it
    to them); the provider's members and staff those of any of its products."""
    user = viewer(request)
    if user is not None:
        try:
            return marketplace_selectors.provider_product_get(user, slug), True
        except Http404:
            pass
    return marketplace_selectors.catalog_product_get(user, slug), False


def plan_get_readable(request: Request, plan_id: int) -> Plan:
    """A plan the user may read (see ``plans_product_get``), or Http404."""
    plan = Plan.objects.select_related("product__organization", "version").filter(pk=plan_id).first()
    if plan is None:
        raise Http404("No such plan")
    user = viewer(request)
    if _is_provider_side(user, plan.product):
        return plan
    if plan.is_active and marketplace_selectors.catalog_products(user).filter(pk=plan.product_id).exists():
        return plan
    raise Http404("No such plan")


def plan_get_managed(request: Request, plan_id: int) -> Plan:
    """A plan of a product of the user's organizations (any, for staff), for changing;
    Http404 for everyone else. The services then require the admin role."""
    plan = Plan.objects.select_related("product__organization", "version").filter(pk=plan_id).first()
    if plan is None or not _is_provider_side(request_user(request), plan.product):
        raise Http404("No such plan")
    return plan
