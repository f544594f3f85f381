from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.models import Organization, Role, slug_validator


class FormServiceErrorsMixin:
    """Copies a service's ValidationError onto the form, field by field where it can."""

    def add_service_error(self, error: ValidationError) -> None:
        form: Any = self
        if hasattr(error, "error_dict"):
            for field, messages in error.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            form.add_error(None, error.messages)


class OrganizationForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100)
    slug = forms.CharField(
        max_length=50,
        required=False,
        validators=[slug_validator],
        help_text="Used in URLs. Leave blank to make one from the name.",
    )

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"].strip().lower()
        if slug and Organization.objects.filter(slug=slug).exists():
            raise ValidationError("That slug is taken; choose another.")
        return slug


class OrganizationRenameForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100)


class InvitationForm(FormServiceErrorsMixin, forms.Form):
    email = forms.EmailField()
    role = forms.ChoiceField(choices=Role.choices, initial=Role.MEMBER)


class RoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class ApiTokenForm(FormServiceErrorsMixin, forms.Form):
    name = forms.CharField(max_length=100, help_text="What uses this token, such as “CI deploy”.")
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional, UTC. Leave blank for no expiry.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
