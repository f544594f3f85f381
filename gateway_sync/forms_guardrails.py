"""Forms of the console's guardrail pages."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.forms import FormServiceErrorsMixin
from consumers.models import Plan
from gateway_sync.models_guardrails import GuardrailRule
from gateway_sync.models_routes import Route
from marketplace.models import Product


class PolicyForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100)
    description = forms.CharField(required=False, max_length=2_000, widget=forms.Textarea(attrs={"rows": 2}))
    enabled = forms.BooleanField(required=False, initial=True)


class RuleForm(FormServiceErrorsMixin, forms.Form):
    kind = forms.ChoiceField(choices=GuardrailRule.Kind.choices)
    action = forms.ChoiceField(choices=GuardrailRule.Action.choices)
    on_request = forms.BooleanField(required=False, initial=True, label="Check requests")
    on_response = forms.BooleanField(required=False, label="Check responses (streams too)")
    words = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Keyword rules: one word or phrase per line. Injection rules: extra phrases.",
    )
    pattern = forms.CharField(
        required=False,
        max_length=600,  # The model says why past 500; the form only keeps abuse out.
        widget=forms.TextInput(attrs={"class": "mono"}),
        help_text="Regex and custom ID rules: a Python regular expression.",
    )
    max_chars = forms.IntegerField(required=False, label="Maximum prompt size (characters)")

    def __init__(self, *args: Any, rule: GuardrailRule | None = None, **kwargs: Any) -> None:
        if rule is not None:
            kwargs.setdefault("auto_id", f"id_r{rule.pk}_%s")
            kwargs.setdefault(
                "initial",
                {
                    "kind": rule.kind,
                    "action": rule.action,
                    "on_request": rule.on_request,
                    "on_response": rule.on_response,
                    "words": "\n".join(rule.words),
                    "pattern": rule.pattern,
                    "max_chars": rule.max_chars,
                },
            )
        super().__init__(*args, **kwargs)

    def clean_words(self) -> list[str]:
        return [line.strip() for line in self.cleaned_data["words"].splitlines() if line.strip()]


def attachment_choices() -> list[tuple[str, list[tuple[str, str]]]]:
    """Everything a policy can be attached to, grouped: ``product:ID``, ``plan:ID``,
    ``route:ID``."""
    products = Product.objects.order_by("name")
    plans = Plan.objects.select_related("product").order_by("product__name", "name")
    routes = Route.objects.select_related("product").order_by("product__slug", "name")
    return [
        ("Products", [(f"product:{p.pk}", f"{p.name} ({p.slug})") for p in products]),
        ("Plans", [(f"plan:{p.pk}", str(p)) for p in plans]),
        ("Routes", [(f"route:{r.pk}", str(r)) for r in routes]),
    ]


def resolve_target(value: str) -> dict[str, Product | Plan | Route]:
    """``product:ID`` (or plan, route) as the keyword argument of the attach and detach
    services; ValidationError when it no longer exists."""
    label, _, pk = value.partition(":")
    model: Any = {"product": Product, "plan": Plan, "route": Route}[label]
    obj = model.objects.filter(pk=int(pk)).first()
    if obj is None:
        raise ValidationError("That no longer exists.")
    return {label: obj}


class AttachForm(forms.Form):
    target = forms.ChoiceField(label="Attach to")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        target_field: Any = self.fields["target"]
        target_field.choices = attachment_choices()

    def resolved(self) -> dict[str, Product | Plan | Route]:
        return resolve_target(self.cleaned_data["target"])


class DetachForm(forms.Form):
    """Detaching names what to detach directly (the buttons of the attachments list)."""

    target = forms.RegexField(regex=r"^(product|plan|route):\d{1,18}$")

    def resolved(self) -> dict[str, Product | Plan | Route]:
        return resolve_target(self.cleaned_data["target"])


class PolicyTestForm(forms.Form):
    text = forms.CharField(
        max_length=100_000,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Paste a prompt or a response; nothing is stored.",
    )
    direction = forms.ChoiceField(choices=[("request", "As a request"), ("response", "As a response")])
