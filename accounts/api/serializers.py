from __future__ import annotations

from rest_framework import serializers

from accounts.models import ApiToken, AuditEvent, Invitation, Membership, Organization, Role, User, slug_validator


class UserOutput(serializers.ModelSerializer[User]):
    class Meta:
        model = User
        fields = ["id", "email", "name", "is_staff", "date_joined"]


class OrganizationInput(serializers.Serializer[None]):
    name = serializers.CharField(max_length=100)
    slug = serializers.CharField(max_length=50, required=False, allow_blank=True, validators=[slug_validator])


class OrganizationUpdateInput(serializers.Serializer[None]):
    name = serializers.CharField(max_length=100)


class OrganizationOutput(serializers.ModelSerializer[Organization]):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "created_at"]


class MembershipOutput(serializers.ModelSerializer[Membership]):
    user = UserOutput()

    class Meta:
        model = Membership
        fields = ["id", "user", "role", "created_at"]


class MembershipRoleInput(serializers.Serializer[None]):
    role = serializers.ChoiceField(choices=Role.choices)


class InvitationInput(serializers.Serializer[None]):
    email = serializers.EmailField()
    role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)


class InvitationOutput(serializers.ModelSerializer[Invitation]):
    invited_by = serializers.EmailField(source="invited_by.email", default=None)

    class Meta:
        model = Invitation
        fields = ["id", "email", "role", "status", "invited_by", "created_at", "expires_at"]


class InvitationAcceptInput(serializers.Serializer[None]):
    token = serializers.CharField(max_length=100)


class AuditEventOutput(serializers.ModelSerializer[AuditEvent]):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor_email",
            "action",
            "target_type",
            "target_id",
            "target_repr",
            "changes",
            "ip_address",
        ]


class ApiTokenInput(serializers.Serializer[None]):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiTokenOutput(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "last_used_at", "expires_at", "revoked_at"]


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(help_text="The token itself. Shown only in this response.")

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token"]
