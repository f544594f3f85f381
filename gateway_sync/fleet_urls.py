"""The fleet and snapshot pages, under /console/fleet/."""

from __future__ import annotations

from django.urls import path

from gateway_sync import fleet_views

urlpatterns = [
    path("", fleet_views.fleet_page, name="fleet"),
    path("snapshots/<int:version>/diff/", fleet_views.snapshot_diff_page, name="snapshot_diff"),
    path("snapshots/<int:version>/rollback/", fleet_views.snapshot_rollback, name="snapshot_rollback"),
]
