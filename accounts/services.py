"""The only writers of the accounts app.

Every function here checks that the actor may act, validates with ``full_clean``, writes
in one transaction and records an audit event. Views, the API, the admin and tasks call
these and nothing else.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.text import slugify

from accounts import audit, emails
from accounts.models import ROLE_RANK, ApiToken, AuditEvent, Invitation, Membership, Organization, Role, User
from accounts.selectors import membership_of
from accounts.tokens import keyed_hash, new_prefixed_token, random_string

# --- Audit ---------------------------------------------------------------------------


def audit_record(
    *,
    actor: User | None,
    action: str,
    target: models.Model | None = None,
    organization: Organization | None = None,
    changes: dict[str, Any] | None = None,
) -> AuditEvent:
    """Record that ``actor`` (None for the system) did ``action`` to ``target``.

    ``action`` is ``<entity>.<verb>``, such as ``membership.role_change``. Call it inside
    the transaction that makes the change, so that the change and its record commit or
    roll back together.
    """
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.pk else None,
        actor_email=actor.email if actor is not None else "",
        organization=organization,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_repr=str(target)[:200] if target is not None else "",
        changes=changes or {},
        ip_address=audit.current_ip.get(),
    )


def require_role(actor: User, organization: Organization, minimum: Role) -> Membership:
    membership = membership_of(actor, organization)
    if membership is None or not membership.has_role(minimum):
        raise PermissionDenied(f"This needs the {minimum.label.lower()} role in {organization.name}.")
    return membership


# --- Organizations -------------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:40].strip("-") or "org"
    slug = base
    while Organization.objects.filter(slug=slug).exists():
        slug = f"{base}-{random_string(6).lower()}"
    return slug


@transaction.atomic
def organization_create(*, actor: User, name: str, slug: str = "") -> Organization:
    """Create an organization with ``actor`` as its owner. Without a slug, one is made
    from the name."""
    organization = Organization(name=name.strip(), slug=slug.strip().lower() or _unique_slug(name), created_by=actor)
    organization.full_clean()
    organization.save()
    membership = Membership.objects.create(user=actor, organization=organization, role=Role.OWNER)
    audit_record(
        actor=actor,
        action="organization.create",
        target=organization,
        organization=organization,
        changes={"name": organization.name, "slug": organization.slug},
    )
    audit_record(
        actor=actor,
        action="membership.create",
        target=membership,
        organization=organization,
        changes={"role": Role.OWNER},
    )
    return organization


@transaction.atomic
def organization_update(*, actor: User, organization: Organization, name: str) -> Organization:
    require_role(actor, organization, Role.ADMIN)
    old = organization.name
    organization.name = name.strip()
    organization.full_clean()
    organization.save(update_fields=["name"])
    audit_record(
        actor=actor,
        action="organization.update",
        target=organization,
        organization=organization,
        changes={"name": [old, organization.name]},
    )
    return organization


@transaction.atomic
def organization_delete(*, actor: User, organization: Organization) -> None:
    require_role(actor, organization, Role.OWNER)
    audit_record(
        actor=actor,
        action="organization.delete",
        target=organization,
        changes={"name": organization.name, "slug": organization.slug},
    )
    organization.delete()


# --- Memberships ---------------------------------------------------------------------


def _owner_count(organization: Organization) -> int:
    """Owners of the organization, counted under a lock on the organization's row, so
    that two owners stepping down at once cannot both see the other one and leave none.
    (FOR UPDATE on the count itself would lock nothing: Django drops it from COUNT.)"""
    Organization.objects.select_for_update().filter(pk=organization.pk).values_list("pk", flat=True).get()
    return Membership.objects.filter(organization=organization, role=Role.OWNER).count()


@transaction.atomic
def membership_change_role(*, actor: User, membership: Membership, role: str) -> Membership:
    """Owners may set any role; admins may move people between member and admin, but
    not touch owners. The last owner cannot be demoted."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use one of {', '.join(Role.values)}."})
    organization = membership.organization
    acting = require_role(actor, organization, Role.ADMIN)
    new_role = Role(role)
    if not acting.has_role(Role.OWNER) and (membership.role == Role.OWNER or new_role == Role.OWNER):
        raise PermissionDenied("Only an owner can grant or change the owner role.")
    if membership.role == Role.OWNER and new_role != Role.OWNER and _owner_count(organization) <= 1:
        raise ValidationError({"role": "An organization needs at least one owner. Make someone else an owner first."})
    old = membership.role
    membership.role = new_role
    membership.save(update_fields=["role"])
    audit_record(
        actor=actor,
        action="membership.role_change",
        target=membership,
        organization=organization,
        changes={"user": membership.user.email, "role": [old, new_role.value]},
    )
    return membership


@transaction.atomic
def membership_remove(*, actor: User, membership: Membership) -> None:
    """Remove a member. Anyone may leave; admins may remove members and admins; only
    owners may remove owners; the last owner may not leave."""
    organization = membership.organization
    if membership.user_id != actor.pk:
        acting = require_role(actor, organization, Role.ADMIN)
        if membership.role == Role.OWNER and not acting.has_role(Role.OWNER):
            raise PermissionDenied("Only an owner can remove an owner.")
    if membership.role == Role.OWNER and _owner_count(organization) <= 1:
        raise ValidationError("An organization needs at least one owner. Make someone else an owner first.")
    audit_record(
        actor=actor,
        action="membership.remove",
        target=membership,
        organization=organization,
        changes={"user": membership.user.email, "role": membership.role},
    )
    membership.delete()


# --- Invitations ---------------------------------------------------------------------


@transaction.atomic
def invitation_create(
    *, actor: User, organization: Organization, email: str, role: str = Role.MEMBER
) -> tuple[Invitation, str]:
    """Invite ``email`` to join with ``role`` and email them a link. Returns the invitation
    and its token (the token is in the email; only its hash is stored)."""
    acting = require_role(actor, organization, Role.ADMIN)
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; use one of {', '.join(Role.values)}."})
    if ROLE_RANK[Role(role)] > ROLE_RANK[Role(acting.role)]:
        raise PermissionDenied("You cannot invite someone to a role above your own.")
    if Membership.objects.filter(organization=organization, user__email__iexact=email).exists():
        raise ValidationError({"email": f"{email} is already a member of {organization.name}."})
    if organization.invitations.filter(status=Invitation.Status.PENDING, email__iexact=email).exists():
        raise ValidationError({"email": f"{email} already has a pending invitation. Revoke it to send a new one."})
    token = random_string(40)
    invitation = Invitation(
        organization=organization,
        email=email,
        role=role,
        token_hash=keyed_hash(token),
        invited_by=actor,
        expires_at=timezone.now() + dt.timedelta(days=settings.INVITATION_TTL_DAYS),
    )
    invitation.full_clean()
    try:
        with transaction.atomic():
            invitation.save()
    except IntegrityError:
        # A concurrent request invited the same address a moment ago.
        raise ValidationError({"email": f"{email} already has a pending invitation."}) from None
    audit_record(
        actor=actor,
        action="invitation.create",
        target=invitation,
        organization=organization,
        changes={"email": email, "role": role},
    )
    emails.email_enqueue(
        emails.email_render(
            "accounts/email/invitation",
            [email],
            {
                "invitation": invitation,
                "organization": organization,
                "inviter": actor,
                "accept_url": f"{settings.PORTAL_URL}/invitations/{token}/",
            },
        )
    )
    return invitation, token


@transaction.atomic
def invitation_revoke(*, actor: User, invitation: Invitation) -> Invitation:
    require_role(actor, invitation.organization, Role.ADMIN)
    claimed = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.REVOKED
    )
    if not claimed:
        raise ValidationError(f"This invitation is already {invitation.get_status_display().lower()}.")
    invitation.refresh_from_db()
    audit_record(
        actor=actor,
        action="invitation.revoke",
        target=invitation,
        organization=invitation.organization,
        changes={"email": invitation.email},
    )
    return invitation


def invitation_find(token: str) -> Invitation | None:
    return Invitation.objects.select_related("organization", "invited_by").filter(token_hash=keyed_hash(token)).first()


@transaction.atomic
def invitation_accept(*, user: User, token: str) -> Membership:
    """Join the organization of a pending, unexpired invitation addressed to one of the
    user's verified email addresses."""
    invitation = invitation_find(token)
    if invitation is None:
        raise ValidationError("This invitation link is not valid.")
    if invitation.status != Invitation.Status.PENDING:
        raise ValidationError(f"This invitation is {invitation.get_status_display().lower()}.")
    if invitation.is_expired:
        raise ValidationError("This invitation has expired. Ask for a new one.")
    if not _user_has_verified_email(user, invitation.email):
        raise PermissionDenied(
            f"This invitation was sent to {invitation.email}. Sign in with that address to accept it."
        )
    claimed = Invitation.objects.filter(pk=invitation.pk, status=Invitation.Status.PENDING).update(
        status=Invitation.Status.ACCEPTED, accepted_by=user, accepted_at=timezone.now()
    )
    if not claimed:
        raise ValidationError("This invitation was just used.")
    membership, created = Membership.objects.get_or_create(
        user=user, organization=invitation.organization, defaults={"role": invitation.role}
    )
    audit_record(
        actor=user,
        action="invitation.accept",
        target=invitation,
        organization=invitation.organization,
        changes={"email": invitation.email, "role": invitation.role, "already_member": not created},
    )
    return membership


def _user_has_verified_email(user: User, email: str) -> bool:
    return bool(EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists())


def invitations_expire() -> int:
    """Mark pending invitations past their expiry as expired. Returns how many."""
    with transaction.atomic():
        expired = list(
            Invitation.objects.select_for_update(skip_locked=True).filter(
                status=Invitation.Status.PENDING, expires_at__lte=timezone.now()
            )
        )
        for invitation in expired:
            invitation.status = Invitation.Status.EXPIRED
            invitation.save(update_fields=["status"])
            audit_record(
                actor=None, action="invitation.expire", target=invitation, organization=invitation.organization
            )
    return len(expired)


# --- API tokens ----------------------------------------------------------------------


@transaction.atomic
def api_token_create(*, user: User, name: str, expires_at: dt.datetime | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token. Returns it with its plaintext, which is never stored."""
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    prefix, token = new_prefixed_token("pat")
    api_token = ApiToken(
        user=user, name=name.strip(), prefix=prefix, token_hash=keyed_hash(token), expires_at=expires_at
    )
    api_token.full_clean()
    api_token.save()
    audit_record(actor=user, action="api_token.create", target=api_token, changes={"name": api_token.name})
    return api_token, token


@transaction.atomic
def api_token_revoke(*, actor: User, api_token: ApiToken) -> ApiToken:
    if api_token.user_id != actor.pk:
        raise PermissionDenied("You can only revoke your own tokens.")
    if api_token.revoked_at is None:
        api_token.revoked_at = timezone.now()
        api_token.save(update_fields=["revoked_at"])
        audit_record(actor=actor, action="api_token.revoke", target=api_token)
    return api_token


def api_token_authenticate(token: str) -> ApiToken | None:
    """The active token matching ``token``, with its user, or None. Touches last_used_at
    at most once a minute, so that reads do not turn into a write per request."""
    api_token = ApiToken.objects.select_related("user").filter(token_hash=keyed_hash(token)).first()
    if api_token is None or not api_token.is_active or not api_token.user.is_active:
        return None
    now = timezone.now()
    if api_token.last_used_at is None or now - api_token.last_used_at > dt.timedelta(minutes=1):
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
    return api_token
