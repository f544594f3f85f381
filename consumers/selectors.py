"""Reads with rules: which apps, keys, plans and subscriptions a user may see."""

from __future__ import annotations

from django.db.models import Q, QuerySet
from django.http import Http404

from accounts.models import Membership, Organization, Role, User
from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
from marketplace.models import Product


def apps_of(organization: Organization) -> QuerySet[ConsumerApp]:
    return ConsumerApp.objects.filter(organization=organization)


def apps_for_user(user: User) -> QuerySet[ConsumerApp]:
    """Apps of the user's organizations (every app, for staff)."""
    apps = ConsumerApp.objects.select_related("organization")
    return apps if user.is_staff else apps.filter(organization__memberships__user=user)


def app_get_for_user(user: User, app_id: int) -> ConsumerApp:
    """The app, or Http404 for anyone outside its organization (staff may read)."""
    try:
        return apps_for_user(user).get(pk=app_id)
    except ConsumerApp.DoesNotExist:
        raise Http404("No such app") from None


def keys_of(app: ConsumerApp) -> QuerySet[ApiKey]:
    return app.keys.select_related("replaced_by").prefetch_related("products")


def key_get(app: ConsumerApp, key_id: int) -> ApiKey:
    try:
        return app.keys.select_related("app__organization").get(pk=key_id)
    except ApiKey.DoesNotExist:
        raise Http404("No such key") from None


def subscriptions_of(app: ConsumerApp) -> QuerySet[Subscription]:
    return app.subscriptions.select_related("product__organization", "plan")


def plans_of(product: Product, *, active_only: bool = True) -> QuerySet[Plan]:
    plans = Plan.objects.filter(product=product)
    return plans.filter(is_active=True) if active_only else plans


def provider_subscriptions(user: User, *, status: str = "") -> QuerySet[Subscription]:
    """Subscriptions to products of organizations where the user is an admin or owner
    (all of them for staff): what they may approve, suspend and resume."""
    subscriptions = Subscription.objects.select_related("app__organization", "product__organization", "plan")
    if not user.is_staff:
        managed = Membership.objects.filter(user=user, role__in=[Role.OWNER, Role.ADMIN]).values("organization")
        subscriptions = subscriptions.filter(product__organization__in=managed)
    if status:
        subscriptions = subscriptions.filter(status=status)
    return subscriptions


def subscription_get_for_user(user: User, subscription_id: int) -> Subscription:
    """A subscription seen from either side (the app's organization or the product's),
    or by staff; Http404 for everyone else."""
    subscriptions = Subscription.objects.select_related("app__organization", "product__organization", "plan")
    if not user.is_staff:
        mine = Membership.objects.filter(user=user).values("organization")
        subscriptions = subscriptions.filter(Q(app__organization__in=mine) | Q(product__organization__in=mine))
    try:
        return subscriptions.get(pk=subscription_id)
    except Subscription.DoesNotExist:
        raise Http404("No such subscription") from None
