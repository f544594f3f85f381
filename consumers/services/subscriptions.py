"""Subscriptions: an app's access to a product under a plan.

pending --approve--> approved --suspend--> suspended --resume--> approved
pending --reject--> rejected;  pending/approved/suspended --cancel--> cancelled
approved/suspended --(expires_at passes)--> expired

Consumers (members of the app's organization) request and cancel. The product's provider
(its organization's admins and owners) or platform staff approve, reject, suspend and
resume. Every transition is audited and emailed.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import emails
from accounts.models import Membership, Role, User
from accounts.services import audit_record, require_role
from consumers.models import ConsumerApp, Plan, Subscription
from gateway_sync.services import config_mark_changed
from marketplace.models import Product
from marketplace.selectors import catalog_products, live_versions

Status = Subscription.Status


def _emails_of(organization_id: int) -> list[str]:
    members = Membership.objects.filter(organization_id=organization_id, role__in=[Role.OWNER, Role.ADMIN])
    return sorted(members.values_list("user__email", flat=True))


def _notify(subscription: Subscription, template: str, to: list[str], **context: object) -> None:
    if to:
        context = {
            "subscription": subscription,
            "app": subscription.app,
            "product": subscription.product,
            "plan": subscription.plan,
            "consumer_url": f"{settings.PORTAL_URL}/consumer/apps/{subscription.app_id}/",
            "provider_url": f"{settings.PORTAL_URL}/provider/subscriptions/",
            **context,
        }
        emails.email_enqueue(emails.email_render(f"consumers/email/{template}", to, context))


def _require_provider(actor: User, subscription: Subscription) -> None:
    if actor.is_staff:
        return
    require_role(actor, subscription.product.organization, Role.ADMIN)


def _claim(subscription: Subscription, expected: tuple[str, ...]) -> Subscription:
    locked = (
        Subscription.objects.select_for_update()
        .select_related("app__organization", "product__organization", "plan")
        .get(pk=subscription.pk)
    )
    if locked.status not in expected:
        allowed = " or ".join(Status(s).label.lower() for s in expected)
        raise ValidationError(f"This subscription is {locked.get_status_display().lower()}; this needs it {allowed}.")
    return locked


@transaction.atomic
def subscription_request(*, actor: User, app: ConsumerApp, product: Product, plan: Plan | None = None) -> Subscription:
    """Subscribe ``app`` to ``product`` under ``plan`` (default: the product's default
    plan). Approved at once unless the plan requires approval."""
    require_role(actor, app.organization, Role.MEMBER)
    # Visible to the app's organization (not merely to the actor, who may belong to others).
    own_private = product.organization_id == app.organization_id and live_versions(product).exists()
    if not (own_private or catalog_products(None).filter(pk=product.pk).exists()):
        raise ValidationError({"product": "This product is not available for subscription."})
    plan = plan or Plan.objects.filter(product=product).filter(is_default=True).first()
    if plan is None or plan.product_id != product.pk:
        raise ValidationError({"plan": f"Choose one of {product.name}'s plans."})
    if not plan.is_active:
        raise ValidationError({"plan": f"The {plan.name} plan takes no new subscriptions."})
    if Subscription.objects.filter(app=app, product=product, status__in=Subscription.OPEN_STATUSES).exists():
        raise ValidationError(
            f"{app.name} is already subscribed to {product.name}; change or cancel that subscription."
        )
    now = timezone.now()
    automatic = not plan.approval_required
    subscription = Subscription(
        app=app,
        product=product,
        plan=plan,
        requested_by=actor,
        status=Status.APPROVED if automatic else Status.PENDING,
        decided_at=now if automatic else None,
    )
    subscription.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            subscription.save()
    except IntegrityError:
        raise ValidationError(f"{app.name} is already subscribed to {product.name}.") from None
    audit_record(
        actor=actor,
        action="subscription.request",
        target=subscription,
        organization=app.organization,
        changes={"product": product.slug, "plan": plan.name, "status": subscription.status},
    )
    if automatic:
        config_mark_changed(reason=f"subscription {subscription.pk} approved")
        _notify(subscription, "subscription_approved", _emails_of(app.organization_id))
    else:
        _notify(subscription, "subscription_requested", _emails_of(product.organization_id))
    return subscription


def _decide(actor: User, subscription: Subscription, *, to: str, action: str, note: str = "") -> Subscription:
    subscription.status = to
    subscription.decided_by, subscription.decided_at = actor, timezone.now()
    subscription.decision_note = note.strip()
    subscription.full_clean(validate_constraints=False)
    subscription.save()
    audit_record(
        actor=actor,
        action=f"subscription.{action}",
        target=subscription,
        organization=subscription.app.organization,
        changes={"product": subscription.product.slug, "status": to, "note": subscription.decision_note},
    )
    return subscription


@transaction.atomic
def subscription_approve(*, actor: User, subscription: Subscription, note: str = "") -> Subscription:
    _require_provider(actor, subscription)
    subscription = _decide(
        actor, _claim(subscription, (Status.PENDING,)), to=Status.APPROVED, action="approve", note=note
    )
    config_mark_changed(reason=f"subscription {subscription.pk} approved")
    _notify(subscription, "subscription_approved", _emails_of(subscription.app.organization_id))
    return subscription


@transaction.atomic
def subscription_reject(*, actor: User, subscription: Subscription, note: str) -> Subscription:
    _require_provider(actor, subscription)
    if not note.strip():
        raise ValidationError({"note": "Tell the consumer why: the reason is emailed to them."})
    subscription = _decide(
        actor, _claim(subscription, (Status.PENDING,)), to=Status.REJECTED, action="reject", note=note
    )
    _notify(subscription, "subscription_rejected", _emails_of(subscription.app.organization_id))
    return subscription


@transaction.atomic
def subscription_suspend(*, actor: User, subscription: Subscription, note: str) -> Subscription:
    """Cut an approved subscription off (abuse, unpaid bills) until it is resumed."""
    _require_provider(actor, subscription)
    if not note.strip():
        raise ValidationError({"note": "Tell the consumer why: the reason is emailed to them."})
    subscription = _decide(
        actor, _claim(subscription, (Status.APPROVED,)), to=Status.SUSPENDED, action="suspend", note=note
    )
    config_mark_changed(reason=f"subscription {subscription.pk} suspended")
    _notify(subscription, "subscription_suspended", _emails_of(subscription.app.organization_id))
    return subscription


@transaction.atomic
def subscription_resume(*, actor: User, subscription: Subscription, note: str = "") -> Subscription:
    _require_provider(actor, subscription)
    subscription = _decide(
        actor, _claim(subscription, (Status.SUSPENDED,)), to=Status.APPROVED, action="resume", note=note
    )
    config_mark_changed(reason=f"subscription {subscription.pk} resumed")
    _notify(subscription, "subscription_approved", _emails_of(subscription.app.organization_id))
    return subscription


@transaction.atomic
def subscription_cancel(*, actor: User, subscription: Subscription) -> Subscription:
    """The consumer ends a subscription (or withdraws a pending request)."""
    if not actor.is_staff:
        require_role(actor, subscription.app.organization, Role.MEMBER)
    locked = _claim(subscription, Subscription.OPEN_STATUSES)
    was = locked.status  # the locked row's, not the caller's copy (it may be stale)
    subscription = _decide(actor, locked, to=Status.CANCELLED, action="cancel")
    if was != Status.PENDING:
        config_mark_changed(reason=f"subscription {subscription.pk} cancelled")
    _notify(subscription, "subscription_cancelled", _emails_of(subscription.product.organization_id))
    return subscription


def subscriptions_expire() -> int:
    """End subscriptions whose ``expires_at`` has passed. Returns how many."""
    with transaction.atomic():
        due = list(
            Subscription.objects.select_for_update(skip_locked=True)
            .select_related("app", "product", "plan")
            .filter(status__in=[Status.APPROVED, Status.SUSPENDED], expires_at__lte=timezone.now())
        )
        for subscription in due:
            subscription.status = Status.EXPIRED
            subscription.save(update_fields=["status", "updated_at"])
            audit_record(
                actor=None,
                action="subscription.expire",
                target=subscription,
                organization=subscription.app.organization,
            )
            _notify(subscription, "subscription_expired", _emails_of(subscription.app.organization_id))
        if due:
            config_mark_changed(reason=f"{len(due)} subscription(s) expired")
    return len(due)


def subscription_require_visible(actor: User, subscription: Subscription) -> None:
    """PermissionDenied unless ``actor`` is on either side of the subscription or staff."""
    if actor.is_staff:
        return
    orgs = {subscription.app.organization_id, subscription.product.organization_id}
    if not Membership.objects.filter(user=actor, organization_id__in=orgs).exists():
        raise PermissionDenied("Not your subscription.")
