"""API keys: created with `secrets`, shown once, stored as a keyed hash.

A key is ``sk-`` followed by 48 base62 characters (about 285 bits). Its first 11
characters (``sk-`` and an 8-character id) are kept as the prefix, so people can tell
their keys apart; the gateway finds a key by the HMAC-SHA256 of the whole key.

A key may carry its own request quotas (per second, minute, day and month), which the
gateway counts across every product the key calls, on top of the plans' limits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.services import audit_record, require_role
from accounts.tokens import keyed_hash, random_string
from consumers.models import ApiKey, ConsumerApp
from gateway_sync.services import config_mark_changed
from marketplace.models import Product

KEY_PREFIX = "sk-"
KEY_BODY_LENGTH = 48
DISPLAY_PREFIX_LENGTH = len(KEY_PREFIX) + 8
MAX_OVERLAP = dt.timedelta(days=7)


def new_api_key() -> str:
    return KEY_PREFIX + random_string(KEY_BODY_LENGTH)


Limits = dict[str, int | None]
NO_LIMITS: Limits = dict.fromkeys(ApiKey.REQUEST_WINDOWS)


def _limits(given: Mapping[str, object]) -> Limits:
    """``given`` as request limits, or a ValidationError naming the fields that are not
    limits or not whole numbers (a float or a bool must not pass for one). Ranges and
    contradictions are the model's to check (``ApiKey.clean``, the plans' rule)."""
    unknown = sorted(set(given) - set(ApiKey.REQUEST_WINDOWS))
    if unknown:
        raise ValidationError(f"Unknown key limits: {', '.join(unknown)}.")
    errors = {
        field: "Give a whole number of requests, or nothing for no quota."
        for field, value in given.items()
        if value is not None and (isinstance(value, bool) or not isinstance(value, int))
    }
    if errors:
        raise ValidationError(errors)
    return {field: value for field, value in given.items() if value is None or isinstance(value, int)}


def _store(key: ApiKey, plaintext: str) -> None:
    key.prefix = plaintext[:DISPLAY_PREFIX_LENGTH]
    key.key_hash = keyed_hash(plaintext)
    key.full_clean(exclude=["prefix", "key_hash"])
    key.save()


def _create(
    *,
    actor: User,
    app: ConsumerApp,
    name: str,
    expires_at: dt.datetime | None,
    products: Iterable[Product],
    limits: Limits,
) -> tuple[ApiKey, str]:
    for _attempt in range(3):
        plaintext = new_api_key()
        key = ApiKey(app=app, name=name.strip(), expires_at=expires_at, created_by=actor, **limits)
        try:
            with transaction.atomic():
                _store(key, plaintext)
        except IntegrityError:
            continue  # a prefix collision, one in 10^14: draw again
        key.products.set(list(products))
        return key, plaintext
    raise RuntimeError("Could not draw a unique API key prefix")


@transaction.atomic
def api_key_create(
    *,
    actor: User,
    app: ConsumerApp,
    name: str,
    expires_at: dt.datetime | None = None,
    products: Iterable[Product] = (),
    requests_per_second: int | None = None,
    requests_per_minute: int | None = None,
    requests_per_day: int | None = None,
    requests_per_month: int | None = None,
) -> tuple[ApiKey, str]:
    """A new key for ``app``, returned with its plaintext (which is never stored).
    ``products`` limits the key to those products; empty means all of the app's. The
    ``requests_per_*`` quotas count the key's requests across all of them (None: none)."""
    require_role(actor, app.organization, Role.MEMBER)
    limits = _limits(
        {
            "requests_per_second": requests_per_second,
            "requests_per_minute": requests_per_minute,
            "requests_per_day": requests_per_day,
            "requests_per_month": requests_per_month,
        }
    )
    if not name.strip():
        raise ValidationError({"name": "Name the key after what will use it."})
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry must be in the future."})
    key, plaintext = _create(actor=actor, app=app, name=name, expires_at=expires_at, products=products, limits=limits)
    audit_record(
        actor=actor,
        action="api_key.create",
        target=key,
        organization=app.organization,
        changes={
            "app": app.name,
            "prefix": key.prefix,
            "expires_at": expires_at.isoformat() if expires_at else None,
            **{field: value for field, value in limits.items() if value is not None},
        },
    )
    config_mark_changed(reason=f"api key {key.prefix} created")
    return key, plaintext


@transaction.atomic
def api_key_revoke(*, actor: User, key: ApiKey) -> ApiKey:
    """Stop a key at once (on every worker, as soon as the next snapshot lands)."""
    require_role(actor, key.app.organization, Role.MEMBER)
    claimed = ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    key.refresh_from_db()
    if claimed:
        audit_record(
            actor=actor,
            action="api_key.revoke",
            target=key,
            organization=key.app.organization,
            changes={"prefix": key.prefix},
        )
        config_mark_changed(reason=f"api key {key.prefix} revoked")
    return key


@transaction.atomic
def api_key_rotate(*, actor: User, key: ApiKey, overlap: dt.timedelta = dt.timedelta(hours=1)) -> tuple[ApiKey, str]:
    """Replace ``key`` by a new one with the same name, scope, expiry and quotas. The old
    key keeps working for ``overlap`` (at most 7 days), so clients can switch without
    downtime."""
    require_role(actor, key.app.organization, Role.MEMBER)
    key = ApiKey.objects.select_for_update().select_related("app__organization").get(pk=key.pk)
    if key.revoked_at is not None:
        raise ValidationError("This key is revoked; create a new key instead of rotating it.")
    if key.replaced_by_id is not None:
        raise ValidationError("This key was already rotated; rotate its replacement instead.")
    now = timezone.now()
    if key.expires_at is not None and key.expires_at <= now:
        raise ValidationError("This key has expired; create a new key instead of rotating it.")
    if overlap < dt.timedelta(0) or overlap > MAX_OVERLAP:
        raise ValidationError({"overlap": "The overlap window must be between 0 and 7 days."})
    new_key, plaintext = _create(
        actor=actor,
        app=key.app,
        name=key.name,
        expires_at=key.expires_at,
        products=key.products.all(),
        limits=key.limits,
    )
    old_until = now + overlap
    key.replaced_by = new_key
    key.expires_at = min(key.expires_at, old_until) if key.expires_at else old_until
    key.save(update_fields=["replaced_by", "expires_at"])
    audit_record(
        actor=actor,
        action="api_key.rotate",
        target=key,
        organization=key.app.organization,
        changes={"old": key.prefix, "new": new_key.prefix, "old_valid_until": key.expires_at.isoformat()},
    )
    config_mark_changed(reason=f"api key {key.prefix} rotated")
    return new_key, plaintext


@transaction.atomic
def api_key_limits_update(*, actor: User, key: ApiKey, **limits: int | None) -> ApiKey:
    """Set some of the key's quotas (``requests_per_second/minute/day/month``; None: no
    quota); those not given stay. Whoever may manage the app's keys may (members and up).
    A revoked or expired key is refused: it no longer calls anything. Changing nothing
    records nothing and publishes nothing."""
    require_role(actor, key.app.organization, Role.MEMBER)
    given = _limits(limits)
    key = ApiKey.objects.select_for_update().select_related("app__organization").get(pk=key.pk)
    if key.revoked_at is not None:
        raise ValidationError("This key is revoked; create a new key instead of changing its quotas.")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        raise ValidationError("This key has expired; create a new key instead of changing its quotas.")
    before = key.limits
    for field, value in given.items():
        setattr(key, field, value)
    key.full_clean(exclude=["prefix", "key_hash"], validate_unique=False, validate_constraints=False)
    changes = {field: [before[field], value] for field, value in key.limits.items() if before[field] != value}
    if changes:
        key.save(update_fields=list(changes))
        audit_record(
            actor=actor,
            action="api_key.limits_update",
            target=key,
            organization=key.app.organization,
            changes={"prefix": key.prefix, **changes},
        )
        config_mark_changed(reason=f"api key {key.prefix} quotas changed")
    return key


def api_keys_expire() -> int:
    """Publish the expiry of keys whose time has come (rotation overlaps included), so
    snapshots drop them. Workers also check expiry themselves; this keeps snapshots lean
    and the configuration generation honest. Returns how many keys expired."""
    with transaction.atomic():
        due = list(
            ApiKey.objects.select_for_update(skip_locked=True).filter(
                expiry_published=False, expires_at__lte=timezone.now()
            )
        )
        for key in due:
            key.expiry_published = True
            key.save(update_fields=["expiry_published"])
        if due:
            config_mark_changed(reason=f"{len(due)} api key(s) expired")
    return len(due)
