"""What consumers hold: apps, their API keys, the plans products offer, and subscriptions.

A subscription joins an app, a product and one of the product's plans. The gateway admits
a key's request to a product when the key's app has an approved subscription to it, and
enforces the plan's limits.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, MinValueValidator, ProhibitNullCharactersValidator
from django.db import models
from django.utils import timezone

from accounts.models import Organization
from marketplace.models import Product, ProductVersion

no_nul = ProhibitNullCharactersValidator()

# The request windows, shortest first: plans and keys limit the same ones.
REQUEST_WINDOWS = ("requests_per_second", "requests_per_minute", "requests_per_day", "requests_per_month")


def limit_field() -> models.PositiveIntegerField[int | None, int | None]:
    """A request limit: empty is unlimited, 0 is refused (a limit of nothing is a revocation)."""
    return models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])


def window_contradictions(instance: models.Model, windows: tuple[str, ...]) -> dict[str, str]:
    """The limits of ``instance`` that contradict a shorter window's (a longer window
    cannot allow less than a shorter one), by field; empty when they agree. Plans and
    keys share this rule."""
    errors: dict[str, str] = {}
    previous: tuple[str, int] | None = None
    for field in windows:
        value = getattr(instance, field)
        if value is None:
            continue
        if previous is not None and value < previous[1]:
            longer = field.replace("_", " ")
            shorter = previous[0].replace("_", " ")
            errors[field] = f"The {longer} limit ({value}) is below the {shorter} limit ({previous[1]})."
        previous = (field, value)
    return errors


class ConsumerApp(models.Model):
    class Environment(models.TextChoices):
        PRODUCTION = "production", "Production"
        STAGING = "staging", "Staging"
        DEVELOPMENT = "development", "Development"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="apps")
    name = models.CharField(max_length=100, validators=[no_nul])
    description = models.TextField(blank=True, max_length=2_000, validators=[MaxLengthValidator(2_000), no_nul])
    environment = models.CharField(max_length=16, choices=Environment.choices, default=Environment.DEVELOPMENT)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="app_name_unique_per_org")]

    def __str__(self) -> str:
        return self.name


class ApiKey(models.Model):
    """An app's gateway key. Only its keyed hash (HMAC-SHA256 under KEY_HASH_PEPPER) and a
    short prefix, for recognising it, are stored; the key itself is shown once.

    ``products`` limits the key to some of the app's subscribed products (empty: all).
    A rotated key keeps working until its ``expires_at``, the end of the overlap window.
    The request limits are the key's own quotas, counted across every product it calls,
    on top of each subscription's plan (empty: only the plans limit it).
    """

    app = models.ForeignKey(ConsumerApp, on_delete=models.CASCADE, related_name="keys")
    name = models.CharField(max_length=100, validators=[no_nul])
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    products = models.ManyToManyField(Product, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    # Set once the expiry has been published to the gateway (see api_keys_expire).
    expiry_published = models.BooleanField(default=False)
    requests_per_second = limit_field()
    requests_per_minute = limit_field()
    requests_per_day = limit_field()
    requests_per_month = limit_field()

    REQUEST_WINDOWS = REQUEST_WINDOWS

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def clean(self) -> None:
        """Refuse contradictory quotas, by the plans' rule."""
        super().clean()
        errors = window_contradictions(self, self.REQUEST_WINDOWS)
        if errors:
            raise ValidationError(errors)

    @property
    def limits(self) -> dict[str, int | None]:
        return {field: getattr(self, field) for field in self.REQUEST_WINDOWS}

    @property
    def has_limits(self) -> bool:
        return any(value is not None for value in self.limits.values())

    @property
    def status(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= timezone.now():
            return "expired"
        if self.replaced_by_id is not None:
            return "rotating"
        return "active"

    @property
    def is_usable(self) -> bool:
        return self.status in {"active", "rotating"}


class Plan(models.Model):
    """What a subscription to a product allows. Limits left empty are unlimited.

    A plan belongs to a product and, when ``version`` is set, applies to that version only
    (the subscription then follows the version's lifecycle); without it, the plan carries
    over from version to version, so subscriptions survive upgrades.
    """

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="plans")
    version = models.ForeignKey(ProductVersion, null=True, blank=True, on_delete=models.CASCADE, related_name="plans")
    name = models.CharField(max_length=60, validators=[no_nul])
    price_label = models.CharField(max_length=60, default="Free", validators=[no_nul])
    description = models.TextField(blank=True, max_length=2_000, validators=[MaxLengthValidator(2_000), no_nul])
    requests_per_second = limit_field()
    requests_per_minute = limit_field()
    requests_per_day = limit_field()
    requests_per_month = limit_field()
    tokens_per_minute = models.PositiveBigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    monthly_budget_usd = models.DecimalField(
        max_digits=12, decimal_places=2, null=True, blank=True, validators=[MinValueValidator(0)]
    )
    # Names of the models (model APIs) or tools (MCP servers) allowed; empty: all of them.
    allowed_models = models.JSONField(default=list, blank=True)
    allowed_tools = models.JSONField(default=list, blank=True)
    approval_required = models.BooleanField(default=False)
    is_default = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True, help_text="Archived plans take no new subscriptions.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    REQUEST_WINDOWS = REQUEST_WINDOWS
    TOKEN_WINDOWS = ("tokens_per_minute", "tokens_per_day", "tokens_per_month")

    class Meta:
        ordering = ["product", "-is_default", "name"]
        constraints = [
            models.UniqueConstraint(fields=["product", "name"], name="plan_name_unique_per_product"),
            models.UniqueConstraint(
                fields=["product"], condition=models.Q(is_default=True), name="plan_one_default_per_product"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.name}: {self.name}"

    def clean(self) -> None:
        """Refuse contradictory limits: a longer window cannot allow less than a shorter one."""
        super().clean()
        errors = window_contradictions(self, self.REQUEST_WINDOWS) | window_contradictions(self, self.TOKEN_WINDOWS)
        if self.version_id is not None and self.version is not None and self.version.product_id != self.product_id:
            errors["version"] = "The version must belong to the plan's product."
        if errors:
            raise ValidationError(errors)


class Subscription(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SUSPENDED = "suspended", "Suspended"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired"

    # An app holds at most one subscription to a product in these states.
    OPEN_STATUSES = (Status.PENDING, Status.APPROVED, Status.SUSPENDED)

    app = models.ForeignKey(ConsumerApp, on_delete=models.CASCADE, related_name="subscriptions")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="subscriptions")
    plan = models.ForeignKey(Plan, on_delete=models.PROTECT, related_name="subscriptions")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True, max_length=2_000, validators=[MaxLengthValidator(2_000), no_nul])
    expires_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-requested_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["app", "product"],
                condition=models.Q(status__in=["pending", "approved", "suspended"]),
                name="subscription_one_open_per_app_and_product",
            )
        ]

    def __str__(self) -> str:
        return f"{self.app} → {self.product} ({self.status})"


# Usage events live in their own module; importing them here registers the model.
from consumers.models_usage import UsageEvent  # noqa: E402, F401
