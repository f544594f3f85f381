"""The review lifecycle of a version.

draft --submit--> in_review --approve--> published --deprecate--> deprecated --retire--> retired
                  in_review --reject/withdraw--> draft

Providers (any member) submit and withdraw; platform staff approve and reject; provider
admins deprecate and retire. Every step is audited and emailed.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts import emails
from accounts.models import Role, User
from accounts.services import audit_record, require_role
from gateway_sync.services import config_mark_changed
from marketplace.indexing import product_index_task
from marketplace.models import Product, ProductVersion

Status = ProductVersion.Status


def _claim(version: ProductVersion, expected: tuple[str, ...]) -> ProductVersion:
    """Lock the version's row and check its status, so two reviewers cannot both act."""
    locked = ProductVersion.objects.select_for_update().select_related("product__organization").get(pk=version.pk)
    if locked.status not in expected:
        allowed = " or ".join(Status(s).label.lower() for s in expected)
        raise ValidationError(
            f"Version {locked.version} is {locked.get_status_display().lower()}; this needs it to be {allowed}."
        )
    return locked


def _provider_admin_emails(version: ProductVersion) -> list[str]:
    memberships = version.product.organization.memberships.filter(role__in=[Role.OWNER, Role.ADMIN])
    return sorted(memberships.values_list("user__email", flat=True))


def _staff_emails() -> list[str]:
    return sorted(get_user_model().objects.filter(is_staff=True, is_active=True).values_list("email", flat=True))


def _notify(template: str, to: list[str], version: ProductVersion, **context: object) -> None:
    if to:
        url = f"{settings.PORTAL_URL}/provider/products/{version.product.slug}/versions/{version.pk}/"
        emails.email_enqueue(
            emails.email_render(
                f"marketplace/email/{template}",
                to,
                {"version": version, "product": version.product, "url": url, **context},
            )
        )


def missing_for_submission(version: ProductVersion) -> list[str]:
    """What a version still lacks before it can be reviewed (empty when complete)."""
    missing: list[str] = []
    kind = version.product.kind
    if not version.upstream_url:
        missing.append("an upstream URL")
    if kind == Product.Kind.REST_API and "openapi" not in version.spec:
        missing.append("an OpenAPI document")
    if kind == Product.Kind.MODEL_API and not version.models.exists():
        missing.append("at least one model")
    if kind == Product.Kind.MCP_SERVER and not version.tools.exists():
        missing.append("tools (discover them, or define REST-to-MCP tools)")
    if kind == Product.Kind.AGENT and "agent_card" not in version.spec:
        missing.append("an agent card")
    return missing


@transaction.atomic
def version_submit(*, actor: User, version: ProductVersion) -> ProductVersion:
    require_role(actor, version.product.organization, Role.MEMBER)
    version = _claim(version, (Status.DRAFT,))
    missing = missing_for_submission(version)
    if missing:
        raise ValidationError(f"Before review, add {', '.join(missing)}.")
    version.status = Status.IN_REVIEW
    version.submitted_at = timezone.now()
    version.review_note = ""
    version.save()
    audit_record(actor=actor, action="version.submit", target=version, organization=version.product.organization)
    _notify(
        "version_submitted", _staff_emails(), version, actor=actor, review_url=f"{settings.PORTAL_URL}/console/reviews/"
    )
    return version


@transaction.atomic
def version_withdraw(*, actor: User, version: ProductVersion) -> ProductVersion:
    """Take a version back out of review, to change it."""
    require_role(actor, version.product.organization, Role.MEMBER)
    version = _claim(version, (Status.IN_REVIEW,))
    version.status = Status.DRAFT
    version.save()
    audit_record(actor=actor, action="version.withdraw", target=version, organization=version.product.organization)
    return version


def _require_staff(actor: User) -> None:
    if not actor.is_staff:
        raise PermissionDenied("Only platform staff review versions.")


@transaction.atomic
def version_approve(*, actor: User, version: ProductVersion) -> ProductVersion:
    """Publish a version: the catalog shows it and the gateway serves it."""
    _require_staff(actor)
    version = _claim(version, (Status.IN_REVIEW,))
    now = timezone.now()
    version.status = Status.PUBLISHED
    version.reviewed_by, version.reviewed_at, version.published_at = actor, now, now
    version.save()
    config_mark_changed(reason=f"version.approve {version}")
    audit_record(actor=actor, action="version.approve", target=version, organization=version.product.organization)
    _notify("version_approved", _provider_admin_emails(version), version)
    product_id = version.product_id
    transaction.on_commit(lambda: product_index_task.delay(product_id))
    return version


@transaction.atomic
def version_reject(*, actor: User, version: ProductVersion, reason: str) -> ProductVersion:
    """Send a version back to draft with the reviewer's reason."""
    _require_staff(actor)
    if not reason.strip():
        raise ValidationError({"reason": "Tell the provider why: the reason is emailed to them."})
    version = _claim(version, (Status.IN_REVIEW,))
    version.status = Status.DRAFT
    version.reviewed_by, version.reviewed_at, version.review_note = actor, timezone.now(), reason.strip()
    version.save()
    audit_record(
        actor=actor,
        action="version.reject",
        target=version,
        organization=version.product.organization,
        changes={"reason": version.review_note},
    )
    _notify("version_rejected", _provider_admin_emails(version), version, reason=version.review_note)
    return version


@transaction.atomic
def version_deprecate(*, actor: User, version: ProductVersion, sunset_at: dt.datetime) -> ProductVersion:
    """Announce that a published version will be retired on ``sunset_at``; it keeps
    being served until then."""
    require_role(actor, version.product.organization, Role.ADMIN)
    if sunset_at <= timezone.now():
        raise ValidationError({"sunset_at": "The sunset date must be in the future."})
    version = _claim(version, (Status.PUBLISHED,))
    version.status = Status.DEPRECATED
    version.deprecated_at, version.sunset_at = timezone.now(), sunset_at
    version.save()
    config_mark_changed(reason=f"version.deprecate {version}")
    audit_record(
        actor=actor,
        action="version.deprecate",
        target=version,
        organization=version.product.organization,
        changes={"sunset_at": sunset_at.isoformat()},
    )
    _notify("version_deprecated", _provider_admin_emails(version), version)
    return version


@transaction.atomic
def version_retire(*, actor: User | None, version: ProductVersion) -> ProductVersion:
    """Stop serving a version. ``actor`` None is the sunset task."""
    if actor is not None:
        require_role(actor, version.product.organization, Role.ADMIN)
    version = _claim(version, (Status.PUBLISHED, Status.DEPRECATED))
    version.status = Status.RETIRED
    version.retired_at = timezone.now()
    version.save()
    config_mark_changed(reason=f"version.retire {version}")
    audit_record(actor=actor, action="version.retire", target=version, organization=version.product.organization)
    _notify("version_retired", _provider_admin_emails(version), version)
    return version


def versions_retire_due() -> int:
    """Retire deprecated versions whose sunset date has passed. Returns how many."""
    due = ProductVersion.objects.filter(status=Status.DEPRECATED, sunset_at__lte=timezone.now())
    count = 0
    for version in due:
        try:
            version_retire(actor=None, version=version)
            count += 1
        except ValidationError:
            continue  # retired meanwhile by someone else
    return count
