"""Serializers of the catalog API: what anyone may read about a product in the catalog.
Never the upstream (URL, credentials, upstream model names, REST-to-MCP requests)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Organization
from marketplace.api.serializers import (
    ApiOperationOutput,
    CategoryOutput,
    VersionBriefOutput,
    VersionStatusField,
    icon_url,
)
from marketplace.models import McpTool, ModelOffering, Product, ProductVersion


@dataclass(frozen=True)
class SearchHit:
    """How a product matched a catalog search."""

    score: float | None
    matched_tool: str | None = None


class CatalogQueryInput(serializers.Serializer[None]):
    q = serializers.CharField(required=False, allow_blank=True, max_length=200, help_text="Search words.")
    mode = serializers.ChoiceField(
        choices=[("keyword", "keyword"), ("semantic", "semantic"), ("hybrid", "hybrid")],
        default="keyword",
        help_text="With q: match words (keyword), meaning (semantic: also finds MCP tools), or both (hybrid).",
    )
    kind = serializers.ChoiceField(choices=Product.Kind.choices, required=False)
    category = serializers.SlugField(required=False, help_text="A category's slug.")
    provider = serializers.SlugField(required=False, help_text="The provider organization's slug.")


class ProviderOutput(serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields = ["slug", "name"]


class CatalogProductOutput(serializers.ModelSerializer[Product]):
    provider = ProviderOutput(source="organization")
    categories = CategoryOutput(many=True)
    tags = serializers.ListField(child=serializers.CharField())
    icon_url = serializers.SerializerMethodField()

    class Meta:
        model = Product
        fields = ["slug", "name", "kind", "summary", "provider", "categories", "tags", "visibility", "icon_url"]

    @extend_schema_field(OpenApiTypes.URI_REF)
    def get_icon_url(self, product: Product) -> str | None:
        return icon_url(product)


class CatalogSearchResultOutput(CatalogProductOutput):
    """A catalog entry; with ``?q=``, how well it matched and through which tool."""

    score = serializers.SerializerMethodField(help_text="With ?q=: the search score (higher matches better).")
    matched_tool = serializers.SerializerMethodField(
        help_text="With ?mode=semantic: the MCP tool that matched best, when a tool did."
    )

    class Meta(CatalogProductOutput.Meta):
        fields = [*CatalogProductOutput.Meta.fields, "score", "matched_tool"]

    def _hit(self, product: Product) -> SearchHit | None:
        hits: dict[int, SearchHit] = self.context.get("hits", {})
        return hits.get(product.pk)

    def get_score(self, product: Product) -> float | None:
        hit = self._hit(product)
        return hit.score if hit is not None else None

    def get_matched_tool(self, product: Product) -> str | None:
        hit = self._hit(product)
        return hit.matched_tool if hit is not None else None


class CatalogModelOutput(serializers.ModelSerializer[ModelOffering]):
    capabilities = serializers.ListField(child=serializers.ChoiceField(choices=ModelOffering.Capability.choices))

    class Meta:
        model = ModelOffering
        fields = ["public_name", "context_window", "input_price_per_mtok", "output_price_per_mtok", "capabilities"]


class CatalogToolOutput(serializers.ModelSerializer[McpTool]):
    class Meta:
        model = McpTool
        fields = ["name", "title", "description", "input_schema", "output_schema", "annotations"]


class AgentSkillOutput(serializers.Serializer[dict[str, Any]]):
    id = serializers.CharField(default="")
    name = serializers.CharField(default="")
    description = serializers.CharField(default="")
    tags = serializers.ListField(child=serializers.CharField(), default=list)
    examples = serializers.ListField(child=serializers.CharField(), default=list)


class CatalogVersionOutput(serializers.ModelSerializer[ProductVersion]):
    status = VersionStatusField()
    operations = ApiOperationOutput(many=True)
    models = CatalogModelOutput(many=True)
    tools = CatalogToolOutput(many=True)
    skills = serializers.SerializerMethodField(help_text="An agent's skills, from its agent card.")

    class Meta:
        model = ProductVersion
        fields = [
            "version",
            "status",
            "changelog",
            "published_at",
            "deprecated_at",
            "sunset_at",
            "mcp_transport",
            "operations",
            "models",
            "tools",
            "skills",
        ]

    @extend_schema_field(AgentSkillOutput(many=True))
    def get_skills(self, version: ProductVersion) -> list[dict[str, Any]]:
        card = version.spec.get("agent_card") if isinstance(version.spec, dict) else None
        skills = card.get("skills") if isinstance(card, dict) else None
        if not isinstance(skills, list):
            return []
        return [dict(AgentSkillOutput(skill).data) for skill in skills if isinstance(skill, dict)]


class CatalogProductDetailOutput(CatalogProductOutput):
    class Meta(CatalogProductOutput.Meta):
        fields = [*CatalogProductOutput.Meta.fields, "description"]


class CatalogProductPageOutput(CatalogProductDetailOutput):
    """The schema of a product's catalog page: the product, its latest live version in
    full and the list of its live versions."""

    latest_version = CatalogVersionOutput(allow_null=True)
    versions = VersionBriefOutput(many=True)

    class Meta(CatalogProductDetailOutput.Meta):
        fields = [*CatalogProductDetailOutput.Meta.fields, "latest_version", "versions"]
