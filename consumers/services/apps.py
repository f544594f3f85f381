"""Consumer apps."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Organization, Role, User
from accounts.services import audit_record, require_role
from consumers.models import ConsumerApp, Subscription
from gateway_sync.services import config_mark_changed


def _save_unique(app: ConsumerApp) -> None:
    app.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            app.save()
    except IntegrityError:
        raise ValidationError({"name": f"{app.organization.name} already has an app named {app.name!r}."}) from None


@transaction.atomic
def app_create(
    *, actor: User, organization: Organization, name: str, description: str = "", environment: str = "development"
) -> ConsumerApp:
    """A new app of ``organization``; any member may create one."""
    require_role(actor, organization, Role.MEMBER)
    app = ConsumerApp(
        organization=organization,
        name=name.strip(),
        description=description.strip(),
        environment=environment,
        created_by=actor,
    )
    _save_unique(app)
    audit_record(
        actor=actor,
        action="app.create",
        target=app,
        organization=organization,
        changes={"name": app.name, "environment": app.environment},
    )
    return app


@transaction.atomic
def app_update(
    *,
    actor: User,
    app: ConsumerApp,
    name: str | None = None,
    description: str | None = None,
    environment: str | None = None,
) -> ConsumerApp:
    require_role(actor, app.organization, Role.MEMBER)
    changes: dict[str, object] = {}
    for field, value in (("name", name), ("description", description), ("environment", environment)):
        if value is not None and getattr(app, field) != value.strip():
            setattr(app, field, value.strip())
            changes[field] = value.strip()
    if changes:
        _save_unique(app)
        audit_record(actor=actor, action="app.update", target=app, organization=app.organization, changes=changes)
        if "name" in changes:
            config_mark_changed(reason=f"app {app.pk} renamed")  # snapshots carry app names
    return app


@transaction.atomic
def app_delete(*, actor: User, app: ConsumerApp) -> None:
    """Delete an app: its keys stop working and its subscriptions end. Admins and owners
    only, since it cuts off whatever uses the app."""
    require_role(actor, app.organization, Role.ADMIN)
    now = timezone.now()
    keys = app.keys.filter(revoked_at__isnull=True).update(revoked_at=now)
    subscriptions = app.subscriptions.filter(status__in=Subscription.OPEN_STATUSES).update(
        status=Subscription.Status.CANCELLED, decided_at=now
    )
    audit_record(
        actor=actor,
        action="app.delete",
        target=app,
        organization=app.organization,
        changes={"name": app.name, "keys_revoked": keys, "subscriptions_cancelled": subscriptions},
    )
    config_mark_changed(reason=f"app {app.pk} deleted")
    app.delete()
