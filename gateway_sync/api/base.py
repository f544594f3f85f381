"""What the console API shares: the staff-only permission, and choice fields whose enum
gets a name of its own in the OpenAPI schema."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.plumbing import ResolvedComponent
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView


class IsStaff(permissions.IsAuthenticated):
    message = "Traffic governance is for platform staff."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return super().has_permission(request, view) and bool(request.user.is_staff)


class StaffView(APIView):
    permission_classes = [IsStaff]


class NamedChoiceField(serializers.ChoiceField):
    """A choice field whose schema is the enum component ``component_name``. Left to
    drf-spectacular, fields named ``kind`` or ``mode`` would share one name with other
    apps' enums and get a hashed name with a warning."""

    def __init__(self, choices: Any, *, component_name: str, **kwargs: Any) -> None:
        self.component_name = component_name
        super().__init__(choices=choices, **kwargs)


class NamedChoiceFieldExtension(OpenApiSerializerFieldExtension):  # type: ignore[no-untyped-call]
    target_class = NamedChoiceField

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field: NamedChoiceField = self.target
        component = ResolvedComponent(  # type: ignore[no-untyped-call]
            name=field.component_name,
            type=ResolvedComponent.SCHEMA,
            object=field.component_name,
            schema={
                "type": "string",
                "enum": list(field.choices),
                "description": "\n".join(f"* `{value}` - {label}" for value, label in field.choices.items()),
            },
        )
        auto_schema.registry.register_on_missing(component)
        return component.ref
