"""Serializers of the marketplace API: Inputs parse requests for the services, Outputs
describe answers. No Output exposes ``upstream_secret_encrypted`` or the icon's bytes."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import slug_validator
from marketplace.models import ApiOperation, Category, McpTool, ModelOffering, Product, ProductVersion
from marketplace.services.review import missing_for_submission


class VersionStatusField(serializers.ChoiceField):
    """A version's status, read only. Its schema is the one ``VersionStatusEnum``
    component (see VersionStatusFieldExtension)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(choices=ProductVersion.Status.choices, read_only=True, **kwargs)


class VersionStatusFieldExtension(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    """Names the version status enum once. Left to drf-spectacular, its choice set would
    collide with the invitation status (both fields are named ``status``) and be given a
    hashed name with a warning."""

    target_class = VersionStatusField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name="VersionStatusEnum",
            type=ResolvedComponent.SCHEMA,
            object="VersionStatusEnum",
            schema={
                "type": "string",
                "enum": list(ProductVersion.Status.values),
                "description": "\n".join(f"* `{value}` - {label}" for value, label in ProductVersion.Status.choices),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref


# --- Products ------------------------------------------------------------------------


class CategoryOutput(serializers.ModelSerializer[Category]):
    class Meta:
        model = Category
        fields = ["slug", "name"]


class VersionBriefOutput(serializers.ModelSerializer[ProductVersion]):
    status = VersionStatusField()

    class Meta:
        model = ProductVersion
        fields = ["version", "status", "published_at", "deprecated_at", "sunset_at"]


def icon_url(product: Product) -> str | None:
    return reverse("api-product-icon", kwargs={"slug": product.slug}) if product.icon_content_type else None


class ProductOutput(serializers.ModelSerializer[Product]):
    organization = serializers.CharField(source="organization.slug")
    categories: serializers.SlugRelatedField[Category] = serializers.SlugRelatedField(
        many=True, read_only=True, slug_field="slug"
    )
    tags = serializers.ListField(child=serializers.CharField())
    icon_url = serializers.SerializerMethodField()
    versions = VersionBriefOutput(many=True)

    class Meta:
        model = Product
        fields = [
            "id",
            "organization",
            "kind",
            "slug",
            "name",
            "summary",
            "description",
            "categories",
            "tags",
            "visibility",
            "icon_url",
            "versions",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(OpenApiTypes.URI_REF)
    def get_icon_url(self, product: Product) -> str | None:
        return icon_url(product)


class ProductInput(serializers.Serializer[None]):
    organization = serializers.CharField(max_length=50, help_text="The slug of an organization you belong to.")
    kind = serializers.ChoiceField(choices=Product.Kind.choices)
    slug = serializers.CharField(max_length=50, validators=[slug_validator])
    name = serializers.CharField(max_length=100)
    summary = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=50_000, required=False, allow_blank=True, trim_whitespace=False)
    categories = serializers.ListField(child=serializers.SlugField(), required=False, max_length=20)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    visibility = serializers.ChoiceField(choices=Product.Visibility.choices, default=Product.Visibility.PUBLIC)


class ProductUpdateInput(serializers.Serializer[None]):
    """Every field is optional: what is absent stays. The kind and slug never change."""

    name = serializers.CharField(max_length=100, required=False)
    summary = serializers.CharField(max_length=200, required=False)
    description = serializers.CharField(max_length=50_000, required=False, allow_blank=True, trim_whitespace=False)
    categories = serializers.ListField(child=serializers.SlugField(), required=False, max_length=20)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=50)
    visibility = serializers.ChoiceField(choices=Product.Visibility.choices, required=False)


class IconInput(serializers.Serializer[None]):
    icon = serializers.FileField(help_text="A PNG or JPEG image of at most 64 KiB.")


# --- Versions ------------------------------------------------------------------------


class ApiOperationOutput(serializers.ModelSerializer[ApiOperation]):
    tags = serializers.ListField(child=serializers.CharField())

    class Meta:
        model = ApiOperation
        fields = ["method", "path", "operation_id", "summary", "description", "tags"]


class ModelOfferingOutput(serializers.ModelSerializer[ModelOffering]):
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=ModelOffering.Capability.choices))

    class Meta:
        model = ModelOffering
        fields = [
            "public_name",
            "upstream_name",
            "context_window",
            "input_price_per_mtok",
            "output_price_per_mtok",
            "capabilities",
        ]


class McpToolOutput(serializers.ModelSerializer[McpTool]):
    class Meta:
        model = McpTool
        fields = [
            "name",
            "title",
            "description",
            "input_schema",
            "output_schema",
            "annotations",
            "request_template",
            "response_template",
        ]


class VersionOutput(serializers.ModelSerializer[ProductVersion]):
    status = VersionStatusField()
    has_upstream_secret = serializers.SerializerMethodField()

    class Meta:
        model = ProductVersion
        fields = [
            "id",
            "version",
            "status",
            "changelog",
            "upstream_url",
            "upstream_auth_header",
            "has_upstream_secret",
            "connect_timeout_ms",
            "read_timeout_ms",
            "tls_verify",
            "mcp_transport",
            "spec_source_url",
            "created_at",
            "updated_at",
            "submitted_at",
            "reviewed_at",
            "review_note",
            "published_at",
            "deprecated_at",
            "sunset_at",
            "retired_at",
        ]

    def get_has_upstream_secret(self, version: ProductVersion) -> bool:
        return bool(version.upstream_secret_encrypted)


class VersionDetailOutput(VersionOutput):
    """A version with its specification and everything derived from it."""

    spec = serializers.SerializerMethodField(
        help_text="The OpenAPI document, the agent card, the discovered MCP server information or the "
        "REST-to-MCP server (whose template config is secret: only has_config says whether it is set)."
    )
    operations = ApiOperationOutput(many=True)
    models = ModelOfferingOutput(many=True)
    tools = McpToolOutput(many=True)
    missing_for_submission = serializers.SerializerMethodField(
        help_text="What the version still lacks before it can be submitted for review."
    )

    class Meta(VersionOutput.Meta):
        fields = [*VersionOutput.Meta.fields, "spec", "operations", "models", "tools", "missing_for_submission"]

    def get_spec(self, version: ProductVersion) -> dict[str, Any]:
        spec = dict(version.spec) if isinstance(version.spec, dict) else {}
        rest_to_mcp = spec.get("rest_to_mcp")
        if isinstance(rest_to_mcp, dict):
            public = {k: v for k, v in rest_to_mcp.items() if k != "config_encrypted"}
            spec["rest_to_mcp"] = public | {"has_config": bool(rest_to_mcp.get("config_encrypted"))}
        return spec

    def get_missing_for_submission(self, version: ProductVersion) -> list[str]:
        return missing_for_submission(version) if version.is_editable else []


class VersionCreateInput(serializers.Serializer[None]):
    version = serializers.CharField(max_length=64, help_text="A semantic version such as 1.0.0 or 2.0.0-beta.1.")
    changelog = serializers.CharField(max_length=20_000, required=False, allow_blank=True, trim_whitespace=False)
    copy_from = serializers.CharField(
        max_length=64, required=False, help_text="An existing version of the product to copy the upstream and spec of."
    )


class VersionUpdateInput(serializers.Serializer[None]):
    """Every field is optional: what is absent stays."""

    changelog = serializers.CharField(max_length=20_000, required=False, allow_blank=True, trim_whitespace=False)
    upstream_url = serializers.CharField(max_length=500, required=False, allow_blank=True)
    upstream_auth_header = serializers.CharField(max_length=100, required=False, allow_blank=True)
    upstream_secret = serializers.CharField(
        max_length=4_000,
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        write_only=True,
        help_text="Stored encrypted and never returned (see has_upstream_secret). An empty string clears it.",
    )
    connect_timeout_ms = serializers.IntegerField(required=False)
    read_timeout_ms = serializers.IntegerField(required=False)
    tls_verify = serializers.BooleanField(required=False)
    mcp_transport = serializers.ChoiceField(choices=ProductVersion.McpTransport.choices, required=False)


class DeprecateInput(serializers.Serializer[None]):
    sunset_at = serializers.DateTimeField(help_text="When the version will be retired; in the future.")


# --- Specifications ------------------------------------------------------------------


class OpenApiInput(serializers.Serializer[None]):
    """Exactly one of ``document`` and ``url``."""

    document = serializers.CharField(required=False, trim_whitespace=False, help_text="OpenAPI 3.0/3.1, JSON or YAML.")
    url = serializers.CharField(max_length=500, required=False, help_text="Where to fetch the document from.")


class ModelOfferingInput(serializers.Serializer[None]):
    public_name = serializers.CharField(max_length=100)
    upstream_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    context_window = serializers.IntegerField(min_value=1, required=False)
    input_price_per_mtok = serializers.DecimalField(
        max_digits=12, decimal_places=6, required=False, help_text="USD per million input tokens."
    )
    output_price_per_mtok = serializers.DecimalField(
        max_digits=12, decimal_places=6, required=False, help_text="USD per million output tokens."
    )
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=ModelOffering.Capability.choices), required=False
    )


class ModelsInput(serializers.Serializer[None]):
    models = ModelOfferingInput(many=True, help_text="Replaces every model of the version.")


class RestToMcpInput(serializers.Serializer[None]):
    """Exactly one of ``definition``, ``higress_yaml`` and ``openapi``."""

    definition = serializers.DictField(required=False, help_text="The platform's JSON REST-to-MCP definition.")
    higress_yaml = serializers.CharField(required=False, trim_whitespace=False, help_text="A Higress REST-to-MCP YAML.")
    openapi = serializers.CharField(
        required=False, trim_whitespace=False, help_text="An OpenAPI document: one tool per operation."
    )


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object", "additionalProperties": {}}]})
class AgentCardField(serializers.JSONField):
    """The agent card as JSON text or as an object."""


class AgentCardInput(serializers.Serializer[None]):
    """Exactly one of ``card`` and ``url``."""

    card = AgentCardField(required=False)
    url = serializers.CharField(
        max_length=500,
        required=False,
        help_text="The card's URL, or the agent's base URL (/.well-known/agent-card.json).",
    )

    def validate_card(self, value: Any) -> Any:
        if not isinstance(value, str | dict):
            raise serializers.ValidationError("Give the agent card as JSON text or as an object.")
        return value


# --- Review --------------------------------------------------------------------------


class ProductRefOutput(serializers.ModelSerializer[Product]):
    organization = serializers.CharField(source="organization.slug")

    class Meta:
        model = Product
        fields = ["slug", "name", "kind", "organization"]


class ReviewOutput(VersionOutput):
    product = ProductRefOutput()

    class Meta(VersionOutput.Meta):
        fields = ["product", *VersionOutput.Meta.fields]


class RejectInput(serializers.Serializer[None]):
    reason = serializers.CharField(
        max_length=5_000, required=False, allow_blank=True, default="", help_text="Emailed to the provider."
    )
