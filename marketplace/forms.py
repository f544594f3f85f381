from __future__ import annotations

from typing import Any

from django import forms

from accounts.forms import FormServiceErrorsMixin
from marketplace.models import Category, ModelOffering, Product, ProductVersion

TEXTAREA = {"rows": 12, "spellcheck": "false", "class": "mono"}


class ProductForm(FormServiceErrorsMixin, forms.Form):
    kind = forms.ChoiceField(choices=Product.Kind.choices, widget=forms.RadioSelect)
    slug = forms.SlugField(
        max_length=50, help_text="Names the product in gateway URLs, e.g. /mcp/<slug>. Cannot change later."
    )
    name = forms.CharField(max_length=100)
    summary = forms.CharField(max_length=200, help_text="One sentence for the catalog.")
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 6}), help_text="Markdown.")
    categories = forms.ModelMultipleChoiceField(
        queryset=Category.objects.all(), required=False, widget=forms.CheckboxSelectMultiple, to_field_name="slug"
    )
    tags = forms.CharField(required=False, help_text="Comma-separated, e.g. weather, forecast.")
    visibility = forms.ChoiceField(choices=Product.Visibility.choices, initial=Product.Visibility.PUBLIC)

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["categories"] = [c.slug for c in data["categories"]]
        data["tags"] = [t for t in data["tags"].split(",") if t.strip()]
        return data


class ProductEditForm(ProductForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        del self.fields["kind"]
        del self.fields["slug"]


class IconForm(FormServiceErrorsMixin, forms.Form):
    icon = forms.FileField(help_text="PNG or JPEG, at most 64 KiB.")


class VersionForm(FormServiceErrorsMixin, forms.Form):
    version = forms.CharField(max_length=64, help_text="Semantic version, e.g. 1.0.0.")
    changelog = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))
    copy_from = forms.ChoiceField(required=False, help_text="Start from an earlier version's settings.")

    def __init__(self, *args: Any, product: Product, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.product = product
        versions = list(product.versions.values_list("version", flat=True))
        copy_from: Any = self.fields["copy_from"]
        copy_from.choices = [("", "Nothing (empty draft)")] + [(v, v) for v in versions]

    def copy_source(self) -> ProductVersion | None:
        chosen = self.cleaned_data.get("copy_from")
        return self.product.versions.filter(version=chosen).first() if chosen else None


class UpstreamForm(FormServiceErrorsMixin, forms.Form):
    upstream_url = forms.URLField(max_length=500, required=False, label="Upstream URL", assume_scheme="https")
    mcp_transport = forms.ChoiceField(
        choices=ProductVersion.McpTransport.choices, required=False, label="MCP transport"
    )
    upstream_auth_header = forms.CharField(
        max_length=100, required=False, label="Credential header", help_text="e.g. Authorization or X-API-Key"
    )
    upstream_secret = forms.CharField(
        required=False,
        label="Credential value",
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="Stored encrypted. Leave blank to keep the current one.",
    )
    clear_secret = forms.BooleanField(required=False, label="Remove the stored credential")
    connect_timeout_ms = forms.IntegerField(min_value=100, max_value=60_000, label="Connect timeout (ms)")
    read_timeout_ms = forms.IntegerField(min_value=100, max_value=3_600_000, label="Read timeout (ms)")
    tls_verify = forms.BooleanField(required=False, label="Verify the upstream's TLS certificate")
    changelog = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args: Any, version: ProductVersion, **kwargs: Any) -> None:
        kwargs.setdefault(
            "initial",
            {
                field: getattr(version, field)
                for field in (
                    "upstream_url",
                    "mcp_transport",
                    "upstream_auth_header",
                    "connect_timeout_ms",
                    "read_timeout_ms",
                    "tls_verify",
                    "changelog",
                )
            },
        )
        super().__init__(*args, **kwargs)
        if version.product.kind != Product.Kind.MCP_SERVER:
            del self.fields["mcp_transport"]

    def service_kwargs(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        clear = data.pop("clear_secret")
        secret = data.pop("upstream_secret")
        data["upstream_secret"] = "" if clear else (secret or None)
        if "mcp_transport" in data and not data["mcp_transport"]:
            data.pop("mcp_transport")
        return data


class DocumentForm(FormServiceErrorsMixin, forms.Form):
    """A document given as text, as an uploaded file, or as a URL to fetch."""

    document = forms.CharField(required=False, widget=forms.Textarea(attrs=TEXTAREA), strip=False)
    file = forms.FileField(required=False)
    url = forms.URLField(required=False, max_length=500, assume_scheme="https")

    def text_and_url(self) -> tuple[str | None, str | None]:
        upload = self.cleaned_data.get("file")
        text = upload.read().decode("utf-8", errors="replace") if upload else self.cleaned_data.get("document")
        return (text or None), (self.cleaned_data.get("url") or None)


class RestToMcpForm(FormServiceErrorsMixin, forms.Form):
    SOURCES = [
        ("higress_yaml", "Higress REST-to-MCP YAML"),
        ("openapi", "OpenAPI document (one tool per operation)"),
        ("definition", "Definition (JSON)"),
    ]
    source = forms.ChoiceField(choices=SOURCES)
    document = forms.CharField(widget=forms.Textarea(attrs=TEXTAREA), strip=False)


class ModelRowForm(forms.Form):
    public_name = forms.CharField(max_length=100)
    upstream_name = forms.CharField(max_length=200, required=False)
    context_window = forms.IntegerField(min_value=1, initial=8192)
    input_price_per_mtok = forms.DecimalField(
        min_value=0, max_digits=12, decimal_places=6, initial=0, label="Input $/M tokens"
    )
    output_price_per_mtok = forms.DecimalField(
        min_value=0, max_digits=12, decimal_places=6, initial=0, label="Output $/M tokens"
    )
    capabilities = forms.MultipleChoiceField(
        choices=ModelOffering.Capability.choices, required=False, widget=forms.CheckboxSelectMultiple
    )


ModelFormSet = forms.formset_factory(ModelRowForm, extra=2, can_delete=True, max_num=50, validate_max=True)


class DeprecateForm(FormServiceErrorsMixin, forms.Form):
    sunset_at = forms.DateTimeField(
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}), help_text="UTC. Subscribers are told this date."
    )


class RejectForm(FormServiceErrorsMixin, forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=5000)


class CatalogFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    mode = forms.ChoiceField(choices=[("keyword", "Keywords"), ("semantic", "Meaning")], required=False)
    kind = forms.ChoiceField(choices=[("", "All kinds"), *Product.Kind.choices], required=False)
    category = forms.ChoiceField(required=False)
    provider = forms.CharField(required=False, max_length=50)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        category: Any = self.fields["category"]
        category.choices = [("", "All categories"), *Category.objects.values_list("slug", "name")]
