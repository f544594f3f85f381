from __future__ import annotations

from django.urls import path

from gateway_sync import fleet_api

urlpatterns = [
    path("snapshots/", fleet_api.SnapshotListView.as_view(), name="api-snapshots"),
    path("snapshots/publish/", fleet_api.SnapshotPublishView.as_view(), name="api-snapshot-publish"),
    path("snapshots/<int:version>/diff/", fleet_api.SnapshotDiffView.as_view(), name="api-snapshot-diff"),
    path("snapshots/<int:version>/rollback/", fleet_api.SnapshotRollbackView.as_view(), name="api-snapshot-rollback"),
    path("workers/", fleet_api.WorkerListView.as_view(), name="api-workers"),
]
