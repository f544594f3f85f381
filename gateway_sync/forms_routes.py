"""Forms of the console's route pages. They parse what people type (lists, header lines,
target names) into what the services take; the services and models judge the values, and
their errors come back onto these fields, which carry the models' field names."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.forms import FormServiceErrorsMixin
from gateway_sync.models_routes import Canary, Route, RouteTarget
from marketplace.models import Product


def _items(text: str) -> list[str]:
    """Comma- or newline-separated items, stripped, empty ones dropped."""
    return [item.strip() for item in re.split(r"[,\n]", text or "") if item.strip()]


def parse_int_list(text: str, what: str) -> list[int]:
    values = []
    for item in _items(text):
        if not re.fullmatch(r"-?\d{1,9}", item):
            raise ValidationError(f"{item!r} is not a whole number; list {what} separated by commas.")
        values.append(int(item))
    return values


def parse_headers(text: str) -> dict[str, str]:
    """``Name: value`` lines into a dict."""
    headers: dict[str, str] = {}
    for number, line in enumerate((text or "").splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise ValidationError(f"Line {number}: write each header as Name: value.")
        if name.strip() in headers:
            raise ValidationError(f"Line {number}: {name.strip()} is listed twice.")
        headers[name.strip()] = value.strip()
    return headers


def format_headers(headers: dict[str, str]) -> str:
    return "\n".join(f"{name}: {value}" for name, value in headers.items())


class MatchFieldsMixin(forms.Form):
    path_prefix = forms.CharField(required=False, max_length=500, help_text="REST APIs: such as /v2/orders.")
    model = forms.CharField(required=False, max_length=100, help_text="Model APIs: the public model name.")
    host = forms.CharField(required=False, max_length=253, help_text="Optional: only requests to this host.")
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "class": "mono"}),
        help_text="Optional: one “Name: value” per line; all must match.",
    )

    def clean_headers(self) -> dict[str, str]:
        return parse_headers(self.cleaned_data["headers"])


class RouteCreateForm(FormServiceErrorsMixin, MatchFieldsMixin):
    product = forms.ModelChoiceField(queryset=Product.objects.order_by("name"), to_field_name="slug")
    name = forms.CharField(max_length=100)
    priority = forms.IntegerField(initial=0, help_text="Higher wins when several routes match.")

    field_order = ["product", "name", "priority", "path_prefix", "model", "host", "headers"]


class RouteSettingsForm(FormServiceErrorsMixin, MatchFieldsMixin):
    name = forms.CharField(max_length=100)
    priority = forms.IntegerField()
    enabled = forms.BooleanField(required=False)
    connect_timeout_ms = forms.IntegerField(label="Connect timeout (ms)")
    first_byte_timeout_ms = forms.IntegerField(label="First-byte timeout (ms)")
    total_timeout_ms = forms.IntegerField(label="Total timeout (ms)")
    idle_timeout_ms = forms.IntegerField(label="Idle timeout between stream chunks (ms)")
    retry_count = forms.IntegerField(label="Retries", help_text="0 to 5.")
    retry_on_statuses = forms.CharField(required=False, label="Retry on statuses", help_text="Such as 502, 503, 504.")
    retry_on_timeout = forms.BooleanField(required=False, label="Retry on timeout")
    retry_backoff_ms = forms.IntegerField(label="Backoff between retries (ms)")
    fallback_target_ids = forms.CharField(
        required=False, label="Fallback targets", help_text="Target names, in the order to try them."
    )
    fallback_models = forms.CharField(
        required=False, label="Fallback models", help_text="Model APIs: model names, in the order to try them."
    )
    cooldown_failures = forms.IntegerField(label="Cooldown after failures")
    cooldown_window_s = forms.IntegerField(label="…within (seconds)")
    cooldown_s = forms.IntegerField(label="Skip the target for (seconds)")
    limit_rps = forms.IntegerField(required=False, label="Safety limit: requests per second")
    limit_rpm = forms.IntegerField(required=False, label="Safety limit: requests per minute")
    cut_stream_on_budget = forms.BooleanField(
        required=False,
        label="Cut a stream when the token budget runs out",
        help_text="Model APIs. On: the budget is never overshot, but the client gets a truncated answer it "
        "is billed for. Off: answers always finish, and the budget may be overshot by one request.",
    )

    field_order = ["name", "priority", "enabled", "path_prefix", "model", "host", "headers"]

    def __init__(self, *args: Any, route: Route, **kwargs: Any) -> None:
        self.route = route
        targets = {t.pk: t.name for t in route.targets.all()}
        kwargs.setdefault(
            "initial",
            {
                **{field: getattr(route, field) for field in self.base_fields if hasattr(route, field)},
                "headers": format_headers(route.headers),
                "retry_on_statuses": ", ".join(map(str, route.retry_on_statuses)),
                "fallback_target_ids": ", ".join(targets.get(i, str(i)) for i in route.fallback_target_ids),
                "fallback_models": ", ".join(route.fallback_models),
            },
        )
        super().__init__(*args, **kwargs)

    def clean_retry_on_statuses(self) -> list[int]:
        return parse_int_list(self.cleaned_data["retry_on_statuses"], "status codes")

    def clean_fallback_target_ids(self) -> list[int]:
        by_name = {t.name: t.pk for t in self.route.targets.all()}
        names = _items(self.cleaned_data["fallback_target_ids"])
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise ValidationError(f"The route has no target named {', '.join(map(repr, unknown))}.")
        return [by_name[n] for n in names]

    def clean_fallback_models(self) -> list[str]:
        return _items(self.cleaned_data["fallback_models"])


class TargetForm(FormServiceErrorsMixin, forms.Form):
    """A new target. (Every form of the route page has ids of its own: they share field
    names such as ``name``, ``model`` and ``weight``.)"""

    name = forms.CharField(max_length=100)
    upstream_url = forms.CharField(max_length=500, label="Upstream URL")
    auth_header = forms.CharField(required=False, max_length=100, help_text="Such as Authorization.")
    secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Encrypted and never shown again.",
    )
    tls_verify = forms.BooleanField(required=False, initial=True, label="Verify TLS")
    weight = forms.IntegerField(initial=100, help_text="0 to 1000. Add a canary's target with 0.")
    model = forms.CharField(required=False, max_length=200, help_text="Model APIs: the upstream model to send.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_new_target_%s")
        super().__init__(*args, **kwargs)


class TargetEditForm(TargetForm):
    """Editing: an empty secret keeps the stored one; ``clear_secret`` removes it."""

    clear_secret = forms.BooleanField(required=False, label="Remove the stored secret")

    def __init__(self, *args: Any, target: RouteTarget, **kwargs: Any) -> None:
        self.target = target
        kwargs.setdefault("auto_id", f"id_t{target.pk}_%s")
        kwargs.setdefault(
            "initial",
            {f: getattr(target, f) for f in ("name", "upstream_url", "auth_header", "tls_verify", "weight", "model")},
        )
        super().__init__(*args, **kwargs)
        self.fields["secret"].help_text = "Stored; leave empty to keep it." if target.has_secret else "None stored."

    def secret_change(self) -> str | None:
        """None keeps the stored secret, "" clears it, anything else replaces it."""
        if self.cleaned_data.get("clear_secret"):
            return ""
        return self.cleaned_data.get("secret") or None


class TargetWeightForm(FormServiceErrorsMixin, forms.Form):
    weight = forms.IntegerField()


class CanaryStartForm(FormServiceErrorsMixin, forms.Form):
    target = forms.TypedChoiceField(coerce=int, help_text="A target with weight 0.")
    mode = forms.ChoiceField(choices=Canary.Mode.choices)
    weight = forms.IntegerField(required=False, initial=10, label="Weight (%)", help_text="Weight mode: 0 to 100.")
    header_name = forms.CharField(required=False, max_length=100, help_text="Header mode.")
    header_value = forms.CharField(required=False, max_length=500, help_text="Header mode.")
    app_ids = forms.CharField(required=False, label="App ids", help_text="Apps mode: ids separated by commas.")

    def __init__(self, *args: Any, route: Route, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_canary_%s")
        super().__init__(*args, **kwargs)
        target_field: Any = self.fields["target"]
        target_field.choices = [(t.pk, t.name) for t in route.targets.all() if t.weight == 0]

    def clean_app_ids(self) -> list[int]:
        return parse_int_list(self.cleaned_data["app_ids"], "app ids")


class CanaryWeightForm(FormServiceErrorsMixin, forms.Form):
    weight = forms.IntegerField(label="Weight (%)")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "id_canary_weight_%s")
        super().__init__(*args, **kwargs)
