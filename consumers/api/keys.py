"""Consumer API: an app's keys. A key's plaintext is in the response that creates it
(or rotates its predecessor) and nowhere else: never in a list, a detail, the database
or a log."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.auth import request_user
from consumers import selectors, services
from consumers.api import serializers as s
from consumers.api.base import AppScopedView
from consumers.models import ApiKey, ConsumerApp, Subscription
from marketplace.models import Product


def _subscribed_products(app: ConsumerApp, slugs: Sequence[str]) -> list[Product]:
    """The products named by ``slugs`` among those ``app`` subscribes to (pending,
    approved or suspended), or a ValidationError naming the others."""
    if not slugs:
        return []
    subscribed = {
        subscription.product.slug: subscription.product
        for subscription in selectors.subscriptions_of(app).filter(status__in=Subscription.OPEN_STATUSES)
    }
    unknown = [slug for slug in dict.fromkeys(slugs) if slug not in subscribed]
    if unknown:
        raise ValidationError({"products": f"{app.name} does not subscribe to {', '.join(unknown)}."})
    return [subscribed[slug] for slug in dict.fromkeys(slugs)]


class KeyListView(AppScopedView, generics.ListAPIView[ApiKey]):
    """The app's keys, newest first. Any member of its organization may create one."""

    serializer_class = s.KeyOutput

    def get_queryset(self) -> QuerySet[ApiKey]:
        return selectors.keys_of(self.get_app())

    @extend_schema(request=s.KeyInput, responses={201: s.KeyCreatedOutput})
    def post(self, request: Request, app_id: int) -> Response:
        app = self.get_app()
        data = s.KeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = data.validated_data
        key, plaintext = services.api_key_create(
            actor=request_user(request),
            app=app,
            name=fields["name"],
            expires_at=fields["expires_at"],
            products=_subscribed_products(app, fields["products"]),
            **{field: fields.get(field) for field in ApiKey.REQUEST_WINDOWS},
        )
        return Response(s.KeyOutput(key).data | {"key": plaintext}, status=status.HTTP_201_CREATED)


class KeyScopedView(AppScopedView):
    def get_key(self) -> ApiKey:
        return selectors.key_get(self.get_app(), self.kwargs["key_id"])


class KeyDetailView(KeyScopedView):
    @extend_schema(responses=s.KeyOutput)
    def get(self, request: Request, app_id: int, key_id: int) -> Response:
        return Response(s.KeyOutput(self.get_key()).data)

    @extend_schema(
        request=s.KeyLimitsInput,
        responses=s.KeyOutput,
        description="Set the key's quotas (requests per second, minute, day, month), counted across every "
        "product it calls, on top of the plans' limits. Absent fields stay; null removes a quota. "
        "A revoked or expired key is refused.",
    )
    def patch(self, request: Request, app_id: int, key_id: int) -> Response:
        key = self.get_key()
        data = s.KeyLimitsInput(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        key = services.api_key_limits_update(actor=request_user(request), key=key, **data.validated_data)
        return Response(s.KeyOutput(key).data)

    @extend_schema(responses={200: s.KeyOutput}, description="Revoke the key (the same as POST …/revoke/).")
    def delete(self, request: Request, app_id: int, key_id: int) -> Response:
        key = services.api_key_revoke(actor=request_user(request), key=self.get_key())
        return Response(s.KeyOutput(key).data)


class KeyRevokeView(KeyScopedView):
    @extend_schema(
        request=None,
        responses=s.KeyOutput,
        description="Stop the key at once. Revoking a revoked key changes nothing.",
    )
    def post(self, request: Request, app_id: int, key_id: int) -> Response:
        key = services.api_key_revoke(actor=request_user(request), key=self.get_key())
        return Response(s.KeyOutput(key).data)


class KeyRotateView(KeyScopedView):
    @extend_schema(
        request=s.KeyRotateInput,
        responses={201: s.KeyRotatedOutput},
        description="Replace the key by a new one with the same name, products and expiry. The old key keeps "
        "working for overlap_seconds (its new expires_at is in `replaces`).",
    )
    def post(self, request: Request, app_id: int, key_id: int) -> Response:
        old = self.get_key()
        data = s.KeyRotateInput(data=request.data)
        data.is_valid(raise_exception=True)
        overlap = dt.timedelta(seconds=data.validated_data["overlap_seconds"])
        new, plaintext = services.api_key_rotate(actor=request_user(request), key=old, overlap=overlap)
        old.refresh_from_db()
        body = s.KeyOutput(new).data | {"key": plaintext, "replaces": s.KeyOutput(old).data}
        return Response(body, status=status.HTTP_201_CREATED)
