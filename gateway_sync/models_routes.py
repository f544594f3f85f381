"""Routes: how the gateway sends a product's traffic to its upstreams.

A Route matches requests of one product and sends them to its targets by weight, with
timeouts, retries, a fallback chain, a cooldown for failing targets and safety limits.
A Canary sends part of a route's traffic to one new target; CanaryEvent keeps the history
of every canary (started, weight changed, promoted, rolled back), which outlives it.

Field names follow the snapshot contract (gateway_sync.contract.schema.Route). The
services (gateway_sync.services_routes) are the only writers.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from marketplace.models import Product, header_name_validator, no_nul

MAX_TIMEOUT_MS = 3_600_000
MAX_WEIGHT = 1000
MAX_RETRIES = 5
MAX_MATCH_HEADERS = 10
# Headers that carry the consumer's key: a route must not match on (and so copy into every
# snapshot) a secret.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "proxy-authorization", "cookie"})

hostname_validator = RegexValidator(
    r"^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$",
    "Give a host name such as api.example.com (no scheme, port or path).",
)
model_name_validator = RegexValidator(r"^[A-Za-z0-9._:/-]{1,100}$", "Not a valid model name.")


def default_retry_statuses() -> list[int]:
    return [502, 503, 504]


def _timeout_field(default: int, help_text: str) -> models.PositiveIntegerField[int, int]:
    return models.PositiveIntegerField(
        default=default,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_TIMEOUT_MS)],
        help_text=help_text,
    )


class Route(models.Model):
    """How one product's matching requests reach their upstreams. Among a product's
    enabled routes that match a request, the highest ``priority`` wins."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="routes")
    name = models.CharField(max_length=100, validators=[no_nul])
    priority = models.IntegerField(
        default=0, validators=[MinValueValidator(-1000), MaxValueValidator(1000)], help_text="Higher wins."
    )
    enabled = models.BooleanField(default=True)

    # Match. REST API routes match a path prefix, model API routes a model name; MCP
    # servers and agents match by the product itself. Host and headers narrow any of them.
    path_prefix = models.CharField(max_length=500, blank=True, validators=[no_nul])
    model = models.CharField(max_length=100, blank=True, validators=[model_name_validator])
    host = models.CharField(max_length=253, blank=True, validators=[hostname_validator])
    headers = models.JSONField(default=dict, blank=True, help_text="Header name → exact value.")

    # Timeouts, in milliseconds: connect ≤ first byte ≤ total, and idle (between stream
    # chunks) ≤ total.
    connect_timeout_ms = _timeout_field(5_000, "Connecting to the upstream.")
    first_byte_timeout_ms = _timeout_field(60_000, "Until the upstream's first byte.")
    total_timeout_ms = _timeout_field(300_000, "The whole request, streams included.")
    idle_timeout_ms = _timeout_field(60_000, "Between two chunks of a stream.")

    # Retries, against the same target selection, before falling back.
    retry_count = models.PositiveSmallIntegerField(default=0, validators=[MaxValueValidator(MAX_RETRIES)])
    retry_on_statuses = models.JSONField(
        default=default_retry_statuses, blank=True, help_text="Status codes that are retried."
    )
    retry_on_timeout = models.BooleanField(default=True)
    retry_backoff_ms = models.PositiveIntegerField(default=100, validators=[MaxValueValidator(60_000)])

    # Fallback, in order, on 429, 5xx, a timeout or a truncated stream: targets of this
    # route (ids), then other models of the product (model APIs).
    fallback_target_ids = models.JSONField(default=list, blank=True)
    fallback_models = models.JSONField(default=list, blank=True)

    # Cooldown: after ``cooldown_failures`` failures within ``cooldown_window_s`` seconds,
    # a target is skipped for ``cooldown_s`` seconds.
    cooldown_failures = models.PositiveIntegerField(
        default=5, validators=[MinValueValidator(1), MaxValueValidator(1000)]
    )
    cooldown_window_s = models.PositiveIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(3600)]
    )
    cooldown_s = models.PositiveIntegerField(default=30, validators=[MinValueValidator(1), MaxValueValidator(86_400)])

    # Global safety limits of the route, on top of every plan's limits. Empty: none.
    limit_rps = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])
    limit_rpm = models.PositiveIntegerField(null=True, blank=True, validators=[MinValueValidator(1)])

    # Model APIs: end a stream whose token budget runs out mid-way (docs/llm-gateway.md).
    # Off, a stream runs to its end and may overshoot the budget by one request's excess.
    cut_stream_on_budget = models.BooleanField(
        default=False,
        help_text="End a streamed answer when the caller's token budget runs out mid-way.",
    )

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["product", "-priority", "name"]
        constraints = [
            models.UniqueConstraint(fields=["product", "name"], name="route_name_unique_per_product"),
            models.CheckConstraint(
                condition=Q(connect_timeout_ms__lte=F("first_byte_timeout_ms"))
                & Q(first_byte_timeout_ms__lte=F("total_timeout_ms"))
                & Q(idle_timeout_ms__lte=F("total_timeout_ms")),
                name="route_timeouts_ordered",
            ),
            models.CheckConstraint(condition=Q(retry_count__lte=MAX_RETRIES), name="route_retry_count_range"),
            models.CheckConstraint(
                condition=Q(limit_rps__isnull=True) | Q(limit_rpm__isnull=True) | Q(limit_rpm__gte=F("limit_rps")),
                name="route_limits_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product.slug}: {self.name}"

    @property
    def matches_by_product(self) -> bool:
        """MCP servers and agents are matched by their slug alone."""
        return self.product.kind in (Product.Kind.MCP_SERVER, Product.Kind.AGENT)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, list[str]] = {}

        def add(field: str, message: str) -> None:
            errors.setdefault(field, []).append(message)

        self.name = (self.name or "").strip()
        taken = Route.objects.filter(product_id=self.product_id, name=self.name).exclude(pk=self.pk)
        if self.product_id and self.name and taken.exists():
            add("name", f"{self.product.name} already has a route named {self.name!r}.")
        self._clean_match(add)
        self._clean_timeouts(add)
        self._clean_retry(add)
        self._clean_fallback(add)
        if self.cut_stream_on_budget and self.product_id and self.product.kind != Product.Kind.MODEL_API:
            add("cut_stream_on_budget", "Only model API routes stream answers against a token budget.")
        if self.limit_rps is not None and self.limit_rpm is not None and self.limit_rpm < self.limit_rps:
            add(
                "limit_rpm",
                f"The per-minute limit ({self.limit_rpm}) is below the per-second limit ({self.limit_rps}).",
            )
        if errors:
            raise ValidationError(errors)

    def _clean_match(self, add: Any) -> None:
        kind = self.product.kind if self.product_id else None
        self.path_prefix = (self.path_prefix or "").strip()
        self.model = (self.model or "").strip()
        self.host = (self.host or "").strip().lower()
        if self.path_prefix:
            if kind != Product.Kind.REST_API:
                add("path_prefix", "Only REST API routes match a path prefix.")
            elif not self.path_prefix.startswith("/") or re.search(r"[\s?#]", self.path_prefix):
                add("path_prefix", "A path prefix starts with / and has no spaces, query or fragment.")
        if self.model and kind != Product.Kind.MODEL_API:
            add("model", "Only model API routes match a model name.")
        self._clean_headers(add)
        if kind in (Product.Kind.REST_API, Product.Kind.MODEL_API) and not (
            self.path_prefix or self.model or self.host or self.headers
        ):
            what = "a path prefix" if kind == Product.Kind.REST_API else "a model name"
            add("__all__", f"Say what the route matches: {what}, a host or headers.")

    def _clean_headers(self, add: Any) -> None:
        if not isinstance(self.headers, dict):
            add("headers", "Give the headers as name → value.")
            return
        if len(self.headers) > MAX_MATCH_HEADERS:
            add("headers", f"Match at most {MAX_MATCH_HEADERS} headers.")
        for name, value in self.headers.items():
            try:
                header_name_validator(name)
            except ValidationError:
                add("headers", f"{name!r} is not a valid header name.")
                continue
            if name.lower() in SECRET_HEADERS:
                add("headers", f"{name} carries credentials; a route cannot match on it.")
            if not isinstance(value, str) or len(value) > 500 or re.search(r"[\r\n\x00]", value):
                add("headers", f"The value of {name} must be text of at most 500 characters on one line.")

    def _clean_timeouts(self, add: Any) -> None:
        connect, first, total, idle = (
            self.connect_timeout_ms,
            self.first_byte_timeout_ms,
            self.total_timeout_ms,
            self.idle_timeout_ms,
        )
        if None in (connect, first, total, idle):
            return
        if connect > first:
            add(
                "first_byte_timeout_ms",
                f"The first-byte timeout ({first} ms) is shorter than the connect timeout ({connect} ms).",
            )
        if first > total:
            add(
                "total_timeout_ms",
                f"The total timeout ({total} ms) is shorter than the first-byte timeout ({first} ms).",
            )
        if idle > total:
            add("idle_timeout_ms", f"The idle timeout ({idle} ms) is longer than the total timeout ({total} ms).")

    def _clean_retry(self, add: Any) -> None:
        statuses = self.retry_on_statuses
        if not isinstance(statuses, list) or not all(type(s) is int for s in statuses):
            add("retry_on_statuses", "Give the status codes as whole numbers.")
            return
        bad = [s for s in statuses if not 100 <= s <= 599]
        if bad:
            add("retry_on_statuses", f"{', '.join(map(str, bad))}: status codes are between 100 and 599.")
        if len(set(statuses)) != len(statuses):
            add("retry_on_statuses", "A status code is listed twice.")

    def _clean_fallback(self, add: Any) -> None:
        ids = self.fallback_target_ids
        if not isinstance(ids, list) or not all(type(i) is int for i in ids):
            add("fallback_target_ids", "Give the fallback targets as target ids.")
        elif len(set(ids)) != len(ids):
            add("fallback_target_ids", "A fallback target is listed twice.")
        elif ids:
            known = set(self.targets.values_list("pk", flat=True)) if self.pk else set()
            unknown = [i for i in ids if i not in known]
            if unknown:
                add("fallback_target_ids", f"Not targets of this route: {', '.join(map(str, unknown))}.")
        names = self.fallback_models
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            add("fallback_models", "Give the fallback models as names.")
            return
        if names and self.product_id and self.product.kind != Product.Kind.MODEL_API:
            add("fallback_models", "Only model API routes fall back to other models.")
        for name in names:
            if not re.fullmatch(r"[A-Za-z0-9._:/-]{1,100}", name):
                add("fallback_models", f"{name!r} is not a valid model name.")
        if len(set(names)) != len(names):
            add("fallback_models", "A fallback model is listed twice.")


class RouteTarget(models.Model):
    """An upstream of a route. Its secret is encrypted (marketplace.crypto) and never
    shown again; its timeouts are the route's."""

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="targets")
    name = models.CharField(max_length=100, validators=[no_nul])
    upstream_url = models.URLField(max_length=500)
    auth_header = models.CharField(max_length=100, blank=True, validators=[header_name_validator])
    secret_encrypted = models.TextField(blank=True, editable=False)
    tls_verify = models.BooleanField(default=True)
    weight = models.PositiveSmallIntegerField(
        default=100, validators=[MaxValueValidator(MAX_WEIGHT)], help_text=f"0 to {MAX_WEIGHT}; 0 takes no traffic."
    )
    model = models.CharField(
        max_length=200, blank=True, validators=[no_nul], help_text="Model API routes: the upstream model to send."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["route", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["route", "name"], name="route_target_name_unique_per_route"),
            models.CheckConstraint(condition=Q(weight__lte=MAX_WEIGHT), name="route_target_weight_range"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_secret(self) -> bool:
        return bool(self.secret_encrypted)

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        self.name = (self.name or "").strip()
        taken = RouteTarget.objects.filter(route_id=self.route_id, name=self.name).exclude(pk=self.pk)
        if self.route_id and self.name and taken.exists():
            errors["name"] = f"The route already has a target named {self.name!r}."
        if self.secret_encrypted and not self.auth_header:
            errors["auth_header"] = "Name the header that carries the upstream secret."
        if self.model and self.route_id and self.route.product.kind != Product.Kind.MODEL_API:
            errors["model"] = "Only model API routes override the model."
        if errors:
            raise ValidationError(errors)


class Canary(models.Model):
    """A route's current canary: part of its traffic goes to ``target``, by weight (a
    percentage), by a header's value, or for a list of apps. The other requests go to the
    route's other targets by their weights; the canary target's own weight is 0."""

    class Mode(models.TextChoices):
        WEIGHT = "weight", "A percentage of requests"
        HEADER = "header", "Requests with a header value"
        APPS = "apps", "Requests of some apps"

    route = models.OneToOneField(Route, on_delete=models.CASCADE, related_name="canary")
    target = models.ForeignKey(RouteTarget, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.WEIGHT)
    weight = models.PositiveSmallIntegerField(
        default=0, validators=[MaxValueValidator(100)], help_text="Percent of requests (weight mode)."
    )
    header_name = models.CharField(max_length=100, blank=True, validators=[header_name_validator])
    header_value = models.CharField(max_length=500, blank=True, validators=[no_nul])
    app_ids = models.JSONField(default=list, blank=True)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    started_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(weight__lte=100), name="canary_weight_percent")]

    def __str__(self) -> str:
        return f"canary of {self.route}"

    def state(self) -> dict[str, Any]:
        """What the canary does, for its history."""
        return {
            "target": self.target.name,
            "mode": self.mode,
            "weight": self.weight,
            "header_name": self.header_name,
            "header_value": self.header_value,
            "app_ids": list(self.app_ids),
        }

    def clean(self) -> None:
        super().clean()
        errors: dict[str, str] = {}
        if self.target_id and self.route_id and self.target.route_id != self.route_id:
            errors["target"] = "The canary target must be a target of this route."
        if self.mode == self.Mode.HEADER:
            if not self.header_name:
                errors["header_name"] = "Name the header that selects the canary."
            elif self.header_name.lower() in SECRET_HEADERS:
                errors["header_name"] = f"{self.header_name} carries credentials; choose another header."
            if not self.header_value:
                errors["header_value"] = "Give the header value that selects the canary."
        if self.mode == self.Mode.APPS:
            ids = self.app_ids
            if not isinstance(ids, list) or not all(type(i) is int and i > 0 for i in ids):
                errors["app_ids"] = "Give the apps as app ids."
            elif not ids:
                errors["app_ids"] = "List the apps whose requests go to the canary."
        if errors:
            raise ValidationError(errors)


class CanaryEvent(models.Model):
    """One step of a route's canary history, with the state before and after it."""

    class Kind(models.TextChoices):
        STARTED = "started", "Started"
        WEIGHT_CHANGED = "weight_changed", "Weight changed"
        PROMOTED = "promoted", "Promoted"
        ROLLED_BACK = "rolled_back", "Rolled back"

    route = models.ForeignKey(Route, on_delete=models.CASCADE, related_name="canary_events")
    target = models.ForeignKey(RouteTarget, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    target_name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_email = models.CharField(max_length=254, blank=True)
    from_state = models.JSONField(default=dict, blank=True)
    to_state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_name}"
