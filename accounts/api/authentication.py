from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from accounts import services
from accounts.models import ApiToken, User


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer pat_…`` with a personal API token."""

    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[User, ApiToken] | None:
        header = authentication.get_authorization_header(request).decode("latin-1")
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword.lower():
            return None
        token = token.strip()
        if not token or " " in token:
            raise exceptions.AuthenticationFailed("Malformed Authorization header; send 'Bearer <token>'.")
        api_token = services.api_token_authenticate(token)
        if api_token is None:
            # Never echo the token back: it may be a valid secret sent to the wrong place.
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        return api_token.user, api_token

    def authenticate_header(self, request: Request) -> str:
        return 'Bearer realm="api"'


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):  # type: ignore[no-untyped-call]
    target_class = "accounts.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "bearer", "description": "A personal API token (pat_…)."}
