"""Forms of the consumer area and of the provider's plan and subscription pages. They
only parse input; the services decide, and their errors land on these forms' fields."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django import forms
from django.db.models import QuerySet

from accounts.forms import FormServiceErrorsMixin
from consumers.models import ApiKey, ConsumerApp, Plan
from marketplace.models import McpTool, ModelOffering, Product, ProductVersion


class AppForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="What calls the gateway, such as “checkout service”.")
    description = forms.CharField(required=False, max_length=2_000, widget=forms.Textarea(attrs={"rows": 2}))
    environment = forms.ChoiceField(
        choices=ConsumerApp.Environment.choices, initial=ConsumerApp.Environment.DEVELOPMENT
    )


def _limit(label: str) -> forms.IntegerField:
    return forms.IntegerField(required=False, min_value=1, label=label)


KEY_QUOTA_NOTE = "The key's own quotas, across every product it calls, on top of the plans' limits. Empty: none."


class KeyLimitsForm(FormServiceErrorsMixin, forms.Form):
    """A key's own quotas, across every product it calls, on top of the plans' limits."""

    requests_per_second = _limit("Requests per second")
    requests_per_minute = _limit("Requests per minute")
    requests_per_day = _limit("Requests per day")
    requests_per_month = _limit("Requests per month")

    @classmethod
    def for_key(cls, key: ApiKey, data: Any = None) -> KeyLimitsForm:
        """The form of ``key``'s quotas, with ids of its own (the key list holds one per key)."""
        return cls(data, initial=key.limits, auto_id=f"key-{key.pk}-limits-%s")

    def service_kwargs(self) -> dict[str, Any]:
        return {field: self.cleaned_data.get(field) for field in ApiKey.REQUEST_WINDOWS}


class KeyForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="Name it after what will use it, such as “staging server”.")
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at",
        help_text="Optional, UTC. Leave blank for no expiry.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
    products = forms.ModelMultipleChoiceField(
        queryset=Product.objects.none(),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Only for",
        help_text="Leave every box clear for all of the app's subscribed products.",
    )
    requests_per_second = forms.IntegerField(
        required=False, min_value=1, label="Requests per second", help_text=KEY_QUOTA_NOTE
    )
    requests_per_minute = _limit("Requests per minute")
    requests_per_day = _limit("Requests per day")
    requests_per_month = _limit("Requests per month")

    def __init__(self, *args: Any, products: QuerySet[Product], **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "key_%s")  # the app page also has the app's form
        super().__init__(*args, **kwargs)
        field: Any = self.fields["products"]
        field.queryset = products
        if not products.exists():
            del self.fields["products"]

    def service_kwargs(self) -> dict[str, Any]:
        return {
            "name": self.cleaned_data["name"],
            "expires_at": self.cleaned_data["expires_at"],
            "products": list(self.cleaned_data.get("products") or []),
            **{field: self.cleaned_data.get(field) for field in ApiKey.REQUEST_WINDOWS},
        }


# Overlap windows offered when rotating a key: (seconds, label).
OVERLAPS = [
    ("0", "None: the old key stops now"),
    ("3600", "1 hour"),
    ("86400", "24 hours"),
    ("604800", "7 days"),
]


class RotateForm(FormServiceErrorsMixin, forms.Form):
    overlap = forms.TypedChoiceField(choices=OVERLAPS, coerce=int, initial="3600", label="Old key keeps working for")

    def overlap_delta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.cleaned_data["overlap"])


class SubscribeForm(FormServiceErrorsMixin, forms.Form):
    app = forms.ModelChoiceField(queryset=ConsumerApp.objects.none(), empty_label=None)
    plan = forms.ModelChoiceField(queryset=Plan.objects.none(), empty_label=None, widget=forms.RadioSelect)

    def __init__(self, *args: Any, apps: QuerySet[ConsumerApp], plans: QuerySet[Plan], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        app: Any = self.fields["app"]
        app.queryset = apps
        plan: Any = self.fields["plan"]
        plan.queryset = plans


class DecisionForm(FormServiceErrorsMixin, forms.Form):
    """A provider's note on approve and resume (optional) or reject and suspend (the
    service requires it, and says why)."""

    note = forms.CharField(required=False, max_length=2_000)


class NamesField(forms.MultipleChoiceField):
    """Checkboxes of names whose membership in the product is the service's rule to
    check, so a stale or forged name gets the service's precise message."""

    widget = forms.CheckboxSelectMultiple

    def valid_value(self, value: Any) -> bool:
        return True


class PlanForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=60)
    price_label = forms.CharField(max_length=60, initial="Free", help_text="Shown as is, e.g. “$49 / month”.")
    description = forms.CharField(required=False, max_length=2_000, widget=forms.Textarea(attrs={"rows": 2}))
    requests_per_second = _limit("Requests per second")
    requests_per_minute = _limit("Requests per minute")
    requests_per_day = _limit("Requests per day")
    requests_per_month = _limit("Requests per month")
    tokens_per_minute = _limit("Tokens per minute")
    tokens_per_day = _limit("Tokens per day")
    tokens_per_month = _limit("Tokens per month")
    monthly_budget_usd = forms.DecimalField(
        required=False, min_value=0, max_digits=12, decimal_places=2, label="Monthly budget (USD)"
    )
    allowed_models = NamesField(required=False, help_text="None checked: every model.")
    allowed_tools = NamesField(required=False, help_text="None checked: every tool.")
    version = forms.ModelChoiceField(
        queryset=ProductVersion.objects.none(),
        required=False,
        empty_label="Every version (carries over upgrades)",
        label="Applies to",
    )
    approval_required = forms.BooleanField(
        required=False, label="Requests need my approval", help_text="Otherwise subscriptions are approved at once."
    )

    LIMIT_NOTE = "Leave a limit empty for no limit."

    def __init__(self, *args: Any, product: Product, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        versions = ProductVersion.objects.filter(product=product)
        version: Any = self.fields["version"]
        version.queryset = versions.order_by("-created_at")
        # Only the product's own kind of names can be allowed; the other field goes.
        names: list[str] = []
        if product.kind == Product.Kind.MODEL_API:
            names = list(ModelOffering.objects.filter(version__in=versions).values_list("public_name", flat=True))
            del self.fields["allowed_tools"]
        elif product.kind == Product.Kind.MCP_SERVER:
            names = list(McpTool.objects.filter(version__in=versions).values_list("name", flat=True))
            del self.fields["allowed_models"]
        else:
            del self.fields["allowed_models"], self.fields["allowed_tools"]
        for field in ("allowed_models", "allowed_tools"):
            if field in self.fields:
                choices: Any = self.fields[field]
                choices.choices = [(n, n) for n in sorted(set(names))]

    @classmethod
    def initial_for(cls, plan: Plan) -> dict[str, Any]:
        fields = [name for name in cls.base_fields if name != "version"]
        return {**{name: getattr(plan, name) for name in fields}, "version": plan.version_id}

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data.setdefault("allowed_models", [])
        data.setdefault("allowed_tools", [])
        return data
