"""Snapshot history, diff and rollback through the API and the console; the fleet view."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client, override_settings
from django.utils import timezone

from accounts.models import AuditEvent
from consumers.models import Plan
from gateway_sync.contract import decode_snapshot
from gateway_sync.models import SnapshotRecord
from gateway_sync.publish import snapshot_publish
from gateway_sync.services import config_mark_changed
from tests.conftest import client_for
from tests.gateway_sync.conftest import World

pytestmark = pytest.mark.django_db
KEY = "sk-" + "K" * 48


@pytest.fixture
def two_versions(world: World) -> tuple[SnapshotRecord, SnapshotRecord]:
    first = snapshot_publish(reason="first", force=True).record
    Plan.objects.filter(pk=world.plan.pk).update(requests_per_minute=60)
    world.add_key(KEY)
    config_mark_changed(reason="limits and a key")
    second = snapshot_publish(reason="second").record
    assert first is not None
    assert second is not None
    return first, second


def test_the_api_lists_snapshots_for_staff_only(two_versions, staff, member):
    assert client_for(member).get("/api/v1/console/snapshots/").status_code == 403
    assert Client().get("/api/v1/console/snapshots/").status_code == 401
    body = client_for(staff).get("/api/v1/console/snapshots/").json()
    assert [s["version"] for s in body] == [2, 1]


def test_the_diff_names_what_changed_and_hides_key_hashes(two_versions, staff):
    body = client_for(staff).get("/api/v1/console/snapshots/2/diff/").json()
    assert (body["old_version"], body["new_version"]) == (1, 2)
    collections = {c["name"]: c for c in body["collections"]}
    assert collections["keys"]["added"] == [KEY[:11]]
    [plan_change] = collections["plans"]["changed"]
    assert plan_change["fields"]["requests_per_minute"] == [None, 60]
    assert "hash" not in json.dumps(body).replace("sha256", "")


def test_a_diff_against_an_explicit_version_and_bad_input(two_versions, staff):
    client = client_for(staff)
    backwards = {c["name"]: c for c in client.get("/api/v1/console/snapshots/1/diff/?against=2").json()["collections"]}
    assert backwards["keys"]["removed"] == [KEY[:11]]
    problem = client.get("/api/v1/console/snapshots/2/diff/?against=abc")
    assert problem.status_code == 400
    assert problem.headers["Content-Type"] == "application/problem+json"
    assert client.get("/api/v1/console/snapshots/99/diff/").status_code == 404


def test_a_rollback_republishes_an_old_configuration_as_a_new_version(
    two_versions, staff, django_capture_on_commit_callbacks
):
    first, _second = two_versions
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(staff).post("/api/v1/console/snapshots/1/rollback/")
    assert response.status_code == 201
    body = response.json()
    assert (body["version"], body["rolled_back_to"]) == (3, 1)
    record = SnapshotRecord.objects.get(version=3)
    assert record.content_sha256 == first.content_sha256
    assert decode_snapshot(bytes(record.payload)).keys == (), "the key added later is gone again"
    assert AuditEvent.objects.filter(action="snapshot.rollback").exists()
    assert snapshot_publish(reason="reconcile").record is None, "the reconcile does not undo the rollback"


def test_the_next_change_after_a_rollback_publishes_the_database_again(two_versions, staff):
    client_for(staff).post("/api/v1/console/snapshots/1/rollback/")
    config_mark_changed(reason="a new edit")
    record = snapshot_publish(reason="edit").record
    assert record is not None
    assert [k.prefix for k in decode_snapshot(bytes(record.payload)).keys] == [KEY[:11]]


def test_rollback_to_an_unknown_version_is_a_clear_error(world, staff, member):
    assert client_for(member).post("/api/v1/console/snapshots/1/rollback/").status_code == 403
    response = client_for(staff).post("/api/v1/console/snapshots/42/rollback/")
    assert response.status_code == 400
    assert response.json()["errors"] == {"version": ["There is no snapshot 42."]}


def test_the_console_shows_workers_history_and_diffs(two_versions, staff, member, tmp_path):
    workers = tmp_path / "workers"
    workers.mkdir()
    beat = {
        "worker_id": "w1",
        "host": "gw-1",
        "pid": 42,
        "snapshot_version": 1,
        "last_error": "refused 9: checksum",
        "sent_at": time.time(),
        "counters": {"applied": 3},
    }
    (workers / "w1.json").write_text(json.dumps(beat))
    with override_settings(SNAPSHOT_DIR=tmp_path / "snapshots", REDIS_URL=""):
        page = client_for(staff).get("/console/fleet/").content.decode()
        api = client_for(staff).get("/api/v1/console/workers/").json()
        assert client_for(member).get("/console/fleet/").status_code == 403
    assert "gw-1" in page
    assert "1 behind" in page
    assert "refused 9: checksum" in page
    assert api[0]["lag"] == 1
    diff = client_for(staff).get("/console/fleet/snapshots/2/diff/").content.decode()
    assert KEY[:11] in diff
    assert "requests_per_minute" in diff


def test_forcing_a_publication_through_the_api(world, staff):
    response = client_for(staff).post(
        "/api/v1/console/snapshots/publish/", {"reason": "ops"}, content_type="application/json"
    )
    assert response.status_code == 201
    assert SnapshotRecord.objects.get().reason == "ops"
    assert SnapshotRecord.objects.get().created_at <= timezone.now()
