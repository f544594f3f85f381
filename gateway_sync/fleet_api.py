"""REST API for snapshots and the fleet (platform staff): history, diff, rollback,
forced publication, and the workers' reports."""

from __future__ import annotations

import dataclasses
from typing import Any

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.auth import request_user
from gateway_sync import fleet
from gateway_sync.contract import codec
from gateway_sync.models import SnapshotRecord
from gateway_sync.publish import snapshot_publish
from gateway_sync.snapshot_diff import diff_snapshots


class SnapshotOutput(serializers.ModelSerializer[SnapshotRecord]):
    class Meta:
        model = SnapshotRecord
        fields = [
            "version",
            "sha256",
            "content_sha256",
            "source_generation",
            "size_bytes",
            "reason",
            "rolled_back_to",
            "created_at",
        ]


class WorkerOutput(serializers.Serializer[Any]):
    worker_id = serializers.CharField()
    host = serializers.CharField()
    pid = serializers.IntegerField(allow_null=True)
    snapshot_version = serializers.IntegerField(allow_null=True)
    lag = serializers.IntegerField(allow_null=True)
    last_error = serializers.CharField()
    heartbeat_age_s = serializers.FloatField()
    stale = serializers.BooleanField()
    counters = serializers.DictField()


class DiffOutput(serializers.Serializer[Any]):
    old_version = serializers.IntegerField()
    new_version = serializers.IntegerField()
    collections = serializers.ListField(child=serializers.DictField())


class PublishInput(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=200, default="published through the API")


class StaffAPIView(APIView):
    permission_classes = [IsAdminUser]


class SnapshotListView(StaffAPIView):
    @extend_schema(responses=SnapshotOutput(many=True))
    def get(self, request: Request) -> Response:
        records = SnapshotRecord.objects.defer("payload")[:100]
        return Response(SnapshotOutput(records, many=True).data)


class SnapshotPublishView(StaffAPIView):
    @extend_schema(request=PublishInput, responses={201: SnapshotOutput})
    def post(self, request: Request) -> Response:
        data = PublishInput(data=request.data)
        data.is_valid(raise_exception=True)
        record = snapshot_publish(reason=data.validated_data["reason"], force=True).record
        return Response(SnapshotOutput(record).data, status=status.HTTP_201_CREATED)


class SnapshotDiffView(StaffAPIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("against", int, description="The version to compare with (default: the previous).")
        ],
        responses=DiffOutput,
    )
    def get(self, request: Request, version: int) -> Response:
        new = get_object_or_404(SnapshotRecord, version=version)
        against = request.query_params.get("against", "")
        if against:
            if not against.isdigit():
                raise serializers.ValidationError({"against": "Give a snapshot version number."})
            old = get_object_or_404(SnapshotRecord, version=int(against))
        else:
            old = SnapshotRecord.objects.filter(version__lt=version).order_by("-version").first() or new
        diff = diff_snapshots(codec.decode_snapshot(bytes(old.payload)), codec.decode_snapshot(bytes(new.payload)))
        body = {
            "old_version": old.version,
            "new_version": new.version,
            "collections": [dataclasses.asdict(c) for c in diff],
        }
        return Response(body)


class SnapshotRollbackView(StaffAPIView):
    @extend_schema(request=None, responses={201: SnapshotOutput})
    def post(self, request: Request, version: int) -> Response:
        record = fleet.snapshot_rollback(actor=request_user(request), version=version)
        return Response(SnapshotOutput(record).data, status=status.HTTP_201_CREATED)


class WorkerListView(StaffAPIView):
    @extend_schema(responses=WorkerOutput(many=True))
    def get(self, request: Request) -> Response:
        return Response(WorkerOutput([dataclasses.asdict(w) for w in fleet.fleet_status()], many=True).data)
