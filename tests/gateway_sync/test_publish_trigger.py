"""Changes trigger a publish after commit; a burst gives one snapshot; a rollback of the
change publishes nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from consumers.models import Plan
from gateway_sync.models import SnapshotRecord
from gateway_sync.services import config_mark_changed
from tests.gateway_sync.conftest import World

pytestmark = pytest.mark.django_db


def test_a_burst_of_changes_gives_one_snapshot(world: World, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        for limit in range(1, 51):
            Plan.objects.filter(pk=world.plan.pk).update(requests_per_minute=limit)
            config_mark_changed(reason=f"edit {limit}")
    record = SnapshotRecord.objects.get()
    assert record.source_generation == 50
    assert '"requests_per_minute":50' in bytes(record.payload).decode()


def test_a_change_rolled_back_publishes_nothing(world: World, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                config_mark_changed(reason="doomed")
                raise RuntimeError("the edit fails")
        except RuntimeError:
            pass
    assert callbacks == []
    assert not SnapshotRecord.objects.exists()


def test_a_failing_publish_does_not_fail_the_change(world: World, django_capture_on_commit_callbacks, monkeypatch):
    def broken(**kwargs: object) -> None:
        raise OSError("broker down")

    monkeypatch.setattr("gateway_sync.tasks.snapshot_publish_task.apply_async", broken)
    with django_capture_on_commit_callbacks(execute=True):
        generation = config_mark_changed(reason="still counts")
    assert generation == 1
