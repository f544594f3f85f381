"""Provider API: a draft version's kind-specific specification. A REST API's OpenAPI
document, a model API's models, an MCP server's tools (discovered, or defined as
REST-to-MCP) and an agent's card. Each answers the version in full."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import renderers
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import request_user
from marketplace import services
from marketplace.api import serializers as s
from marketplace.api.base import VersionScopedView, YamlRenderer
from marketplace.crypto import secret_decrypt
from marketplace.models import ProductVersion
from marketplace.specs.errors import SpecError
from marketplace.specs.higress import export_higress_yaml
from marketplace.specs.rest_to_mcp import RestToMcpServer, validate_definition


class OpenApiView(VersionScopedView):
    """Set a REST API version's OpenAPI document, pasted or fetched from a URL; its
    operations are listed from it. A document that does not validate changes nothing."""

    @extend_schema(request=s.OpenApiInput, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.OpenApiInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.version_set_openapi(actor=request_user(request), version=product_version, **data.validated_data)
        return self.version_response(product_version)


class ModelsView(VersionScopedView):
    """Replace the models a model API version serves, with their prices."""

    @extend_schema(request=s.ModelsInput, responses=s.VersionDetailOutput)
    def put(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.ModelsInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.version_set_models(
            actor=request_user(request), version=product_version, models=data.validated_data["models"]
        )
        return self.version_response(product_version)


class DiscoverView(VersionScopedView):
    """Connect to the version's MCP server (its upstream URL) and store its tools,
    resources and prompts. Calling it again refreshes them."""

    @extend_schema(request=None, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        return self.version_response(
            services.version_discover_mcp(actor=request_user(request), version=self.get_version())
        )


class RestToMcpView(VersionScopedView):
    """Define an MCP server's tools as calls to a REST API."""

    @extend_schema(request=s.RestToMcpInput, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.RestToMcpInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        services.version_set_rest_to_mcp(
            actor=request_user(request),
            version=product_version,
            definition=fields.get("definition"),
            higress_yaml=fields.get("higress_yaml"),
            from_openapi=fields.get("openapi"),
        )
        return self.version_response(product_version)


class HigressExportView(VersionScopedView):
    """The version's REST-to-MCP tools as a Higress REST-to-MCP YAML document."""

    def get_renderers(self) -> list[renderers.BaseRenderer]:
        return [renderers.JSONRenderer(), YamlRenderer()]

    @extend_schema(
        responses={
            (200, "application/yaml"): OpenApiResponse(OpenApiTypes.STR, description="Higress REST-to-MCP YAML."),
        }
    )
    def get(self, request: Request, slug: str, version: str) -> HttpResponse:
        product_version = self.get_version()
        if product_version.mcp_transport != ProductVersion.McpTransport.REST_TO_MCP:
            raise ValidationError("This version's tools are not defined as REST-to-MCP; there is nothing to export.")
        try:
            text = export_higress_yaml(_rest_to_mcp_server(product_version))
        except SpecError as error:
            # Stored tools that Higress cannot express (an argument sent under another name).
            raise ValidationError({"higress_yaml": [str(error), *error.details[:20]]}) from None
        response = HttpResponse(text, content_type="application/yaml; charset=utf-8")
        filename = f"{product_version.product.slug}-{product_version.version}.higress.yaml"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response


def _rest_to_mcp_server(version: ProductVersion) -> RestToMcpServer:
    """The version's REST-to-MCP definition, rebuilt from its tool rows (each row's
    ``request_template`` holds its whole tool). The template config may hold API keys,
    so only its shape is exported: every value is a placeholder to fill in again."""
    stored = version.spec.get("rest_to_mcp") or {}
    config = json.loads(secret_decrypt(stored["config_encrypted"])) if stored.get("config_encrypted") else {}
    return validate_definition(
        {
            "name": stored.get("name") or version.product.slug,
            "base_url": stored.get("base_url") or "",
            "config": _redacted(config),
            # In the order they were defined (the rows are stored in that order).
            "tools": [tool.request_template for tool in version.tools.order_by("pk")],
        }
    )


REDACTED = "<redacted: set it again>"


def _redacted(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return REDACTED


class AgentCardView(VersionScopedView):
    """Set an agent version's A2A agent card, pasted or fetched from the agent."""

    @extend_schema(request=s.AgentCardInput, responses=s.VersionDetailOutput)
    def post(self, request: Request, slug: str, version: str) -> Response:
        product_version = self.get_version()
        data = s.AgentCardInput(data=request.data)
        data.is_valid(raise_exception=True)
        card = data.validated_data.get("card")
        services.version_set_agent_card(
            actor=request_user(request),
            version=product_version,
            card=card if card is None or isinstance(card, str) else json.dumps(card),
            url=data.validated_data.get("url"),
        )
        return self.version_response(product_version)
