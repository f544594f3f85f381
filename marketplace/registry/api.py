"""REST API: import MCP servers from a registry document (POST /api/v1/registry/import/)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import parsers, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors as account_selectors
from accounts.auth import request_user
from marketplace.registry.importer import MAX_ENTRIES, ImportResult, registry_import


@extend_schema_field(OpenApiTypes.OBJECT)
class DocumentField(serializers.JSONField):
    """A server.json, a {server, _meta} entry or a {servers: [...]} list (or its text)."""


class RegistryImportInput(serializers.Serializer[None]):
    organization = serializers.SlugField(max_length=50, help_text="The slug of the organization to import into.")
    document = DocumentField(
        help_text=(
            "A server.json document, a {server, _meta} entry, or a list response {servers: [...]} "
            f"of at most {MAX_ENTRIES} servers; an object, or the same as JSON text."
        )
    )


class RegistryImportedServerOutput(serializers.Serializer[None]):
    index = serializers.IntegerField(help_text="The entry's position in the document.")
    name = serializers.CharField(help_text="The server's name in the document.")
    version = serializers.CharField(help_text="The draft version created.")
    product_slug = serializers.CharField()
    upstream_url = serializers.CharField()
    transport = serializers.CharField()
    notes = serializers.ListField(child=serializers.CharField(), help_text="What the provider still has to set up.")


class RegistrySkippedServerOutput(serializers.Serializer[None]):
    index = serializers.IntegerField()
    name = serializers.CharField()
    reason = serializers.CharField()


class RegistryEntryErrorOutput(serializers.Serializer[None]):
    index = serializers.IntegerField()
    name = serializers.CharField(help_text="The server's name, when the entry has a valid one; else empty.")
    # A field named like Serializer.errors: DRF's metaclass takes it out of the class.
    errors = serializers.ListField(  # type: ignore[assignment]
        child=serializers.CharField(), help_text="One line per error: `path: message`."
    )


class RegistryImportOutput(serializers.Serializer[ImportResult]):
    created = RegistryImportedServerOutput(many=True)
    skipped = RegistrySkippedServerOutput(many=True)
    errors = RegistryEntryErrorOutput(many=True)  # type: ignore[assignment]


class RegistryImportView(APIView):
    """Import MCP servers from a document in the official MCP Registry's shape."""

    parser_classes = [parsers.JSONParser]

    @extend_schema(
        operation_id="registry_import",
        summary="Import MCP servers from a registry document",
        description=(
            "Each server with a streamable-http or sse remote becomes a draft MCP-server product of the "
            "organization (discover its tools and submit it for review as usual). Each entry is validated "
            "against the server.json schema and created on its own: invalid entries are listed under "
            "`errors` and create nothing; servers that run only from packages are `skipped`."
        ),
        request=RegistryImportInput,
        responses={
            200: RegistryImportOutput,
            400: OpenApiResponse(description="No organization, or a document of no accepted shape."),
            403: OpenApiResponse(description="The user is not a member of the organization."),
            404: OpenApiResponse(description="No such organization, or the user cannot see it."),
        },
        examples=[
            OpenApiExample(
                "One remote server",
                request_only=True,
                value={
                    "organization": "acme",
                    "document": {
                        "name": "com.example/weather",
                        "description": "Weather forecasts.",
                        "version": "1.0.0",
                        "remotes": [{"type": "streamable-http", "url": "https://mcp.example.com/mcp"}],
                    },
                },
            )
        ],
    )
    def post(self, request: Request) -> Response:
        user = request_user(request)
        data = RegistryImportInput(data=request.data)
        data.is_valid(raise_exception=True)
        organization = account_selectors.organization_get_for_user(user, data.validated_data["organization"])
        result = registry_import(actor=user, organization=organization, document=data.validated_data["document"])
        return Response(RegistryImportOutput(result).data)
