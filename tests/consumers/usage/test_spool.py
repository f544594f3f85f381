"""Ingestion from spool files (embedded mode): complete ``*.jsonl`` files only, each
deleted once its events are committed."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.test import TestCase
from pytest_django.fixtures import SettingsWrapper

from consumers.models import UsageEvent
from consumers.tasks import usage_ingest_task
from consumers.usage import IngestResult, usage_ingest_spool
from gateway_sync.contract.usage import encode_events
from tests.consumers.usage.conftest import make_event

pytestmark = pytest.mark.django_db
Capture = Callable[..., Any]


def _spool(path: Path, count: int) -> list[str]:
    events = [make_event() for _ in range(count)]
    path.write_bytes(encode_events(events))
    return [event.event_id for event in events]


def test_complete_files_are_ingested_and_files_being_written_are_left_alone(
    spool: Path, django_capture_on_commit_callbacks: Capture
) -> None:
    done = _spool(spool / "worker-1-0001.jsonl", 2) + _spool(spool / "worker-2-0001.jsonl", 1)
    _spool(spool / "worker-1-0002.jsonl.tmp", 4)
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_spool() == IngestResult(inserted=3)
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(done)
    assert [path.name for path in spool.iterdir()] == ["worker-1-0002.jsonl.tmp"]


def test_a_file_is_deleted_only_after_its_events_are_committed(
    spool: Path, django_capture_on_commit_callbacks: Capture
) -> None:
    _spool(spool / "a.jsonl", 2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        usage_ingest_spool()
    assert (spool / "a.jsonl").exists(), "not deleted before the commit"
    for callback in callbacks:
        callback()
    assert not (spool / "a.jsonl").exists()


def test_a_file_ingested_twice_after_a_crash_is_not_doubled(
    spool: Path, django_capture_on_commit_callbacks: Capture
) -> None:
    _spool(spool / "a.jsonl", 2)
    with django_capture_on_commit_callbacks(execute=False):
        usage_ingest_spool()  # stored, then the process died before deleting the file
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_spool() == IngestResult(duplicates=2)
    assert UsageEvent.objects.count() == 2
    assert not (spool / "a.jsonl").exists()


def test_invalid_lines_are_counted_and_the_file_still_completes(
    spool: Path, django_capture_on_commit_callbacks: Capture
) -> None:
    (spool / "a.jsonl").write_bytes(encode_events([make_event()]) + b"garbage\n\n")
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_spool() == IngestResult(inserted=1, invalid=1)
    assert not (spool / "a.jsonl").exists()


def test_the_task_drains_the_spool_in_embedded_mode(
    spool: Path, settings: SettingsWrapper, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.REDIS_URL = ""
    _spool(spool / "a.jsonl", 2)
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_task() == {"inserted": 2, "duplicates": 0, "invalid": 0}


def test_a_missing_spool_folder_is_nothing_to_do(tmp_path: Path) -> None:
    assert usage_ingest_spool(directory=tmp_path / "absent") == IngestResult()


def test_the_usage_ingest_command_drains_the_spool(spool: Path, settings: SettingsWrapper) -> None:
    settings.REDIS_URL = ""
    ids = _spool(spool / "worker-1-0001.jsonl", 3)
    out = io.StringIO()
    with TestCase.captureOnCommitCallbacks(execute=True):
        call_command("usage_ingest", stdout=out)
    assert "3 inserted, 0 duplicates, 0 invalid" in out.getvalue()
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(ids)
    assert list(spool.iterdir()) == []


@pytest.mark.parametrize("interval", ["0", "-1", "99999"])
def test_the_usage_ingest_command_refuses_a_bad_interval(interval: str) -> None:
    with pytest.raises(CommandError, match="--interval"):
        call_command("usage_ingest", "--follow", "--interval", interval)
