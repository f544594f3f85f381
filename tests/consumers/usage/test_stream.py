"""Ingestion from the Redis stream (real Redis, db 12, a stream per test): entries are
acknowledged only after their transaction commits, and entries a crashed reader left
unacknowledged are claimed back, with nothing lost and nothing doubled."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import redis
from pytest_django.fixtures import SettingsWrapper

from consumers.models import UsageEvent
from consumers.tasks import usage_ingest_task
from consumers.usage import EVENT_FIELD, GROUP, IngestResult, usage_ingest_stream
from gateway_sync.contract.usage import encode_event
from tests.consumers.usage.conftest import REDIS_URL, make_event

pytestmark = pytest.mark.django_db
Capture = Callable[..., Any]


def _publish(client: redis.Redis, stream: str, count: int) -> list[str]:
    events = [make_event() for _ in range(count)]
    for event in events:
        client.xadd(stream, {EVENT_FIELD: encode_event(event)})
    return [event.event_id for event in events]


def _pending(client: redis.Redis, stream: str) -> int:
    return int(client.xpending(stream, GROUP)["pending"])


def test_new_entries_are_ingested_and_acknowledged_after_commit(
    redis_client: redis.Redis, stream: str, django_capture_on_commit_callbacks: Capture
) -> None:
    ids = _publish(redis_client, stream, 3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert usage_ingest_stream(client=redis_client, consumer="a") == IngestResult(inserted=3)
    assert _pending(redis_client, stream) == 3, "nothing is acknowledged before the commit"
    for callback in callbacks:
        callback()
    assert _pending(redis_client, stream) == 0
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(ids)


def test_entries_read_by_a_reader_that_crashed_before_committing_are_claimed_and_ingested(
    redis_client: redis.Redis, stream: str, django_capture_on_commit_callbacks: Capture
) -> None:
    ids = _publish(redis_client, stream, 3)
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    # The crashed reader: it read the entries, then died before storing or acknowledging them.
    redis_client.xreadgroup(GROUP, "crashed", {stream: ">"}, count=10)
    assert _pending(redis_client, stream) == 3
    later = _publish(redis_client, stream, 2)
    with django_capture_on_commit_callbacks(execute=True):
        result = usage_ingest_stream(client=redis_client, consumer="b", claim_idle_ms=0)
    assert result == IngestResult(inserted=5)
    assert _pending(redis_client, stream) == 0
    assert sorted(UsageEvent.objects.values_list("event_id", flat=True)) == sorted(ids + later)


def test_entries_committed_but_not_acknowledged_are_claimed_again_without_doubles(
    redis_client: redis.Redis, stream: str, django_capture_on_commit_callbacks: Capture
) -> None:
    _publish(redis_client, stream, 4)
    # The reader stored the events, then died before its acknowledgement ran.
    with django_capture_on_commit_callbacks(execute=False):
        assert usage_ingest_stream(client=redis_client, consumer="crashed").inserted == 4
    assert _pending(redis_client, stream) == 4
    with django_capture_on_commit_callbacks(execute=True):
        result = usage_ingest_stream(client=redis_client, consumer="b", claim_idle_ms=0)
    assert result == IngestResult(duplicates=4)
    assert _pending(redis_client, stream) == 0
    assert UsageEvent.objects.count() == 4


def test_entries_pending_for_less_than_the_idle_time_are_left_to_their_reader(
    redis_client: redis.Redis, stream: str
) -> None:
    _publish(redis_client, stream, 2)
    redis_client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    redis_client.xreadgroup(GROUP, "busy", {stream: ">"}, count=10)
    assert usage_ingest_stream(client=redis_client, consumer="b", claim_idle_ms=60_000) == IngestResult()
    assert _pending(redis_client, stream) == 2


def test_invalid_entries_are_counted_and_acknowledged_so_they_are_not_delivered_forever(
    redis_client: redis.Redis, stream: str, django_capture_on_commit_callbacks: Capture
) -> None:
    _publish(redis_client, stream, 1)
    redis_client.xadd(stream, {EVENT_FIELD: b"garbage"})
    redis_client.xadd(stream, {b"other": b"field"})
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_stream(client=redis_client, consumer="a") == IngestResult(inserted=1, invalid=2)
    assert _pending(redis_client, stream) == 0


def test_a_run_takes_at_most_its_batch_and_the_next_run_the_rest(
    redis_client: redis.Redis, stream: str, django_capture_on_commit_callbacks: Capture
) -> None:
    _publish(redis_client, stream, 5)
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_stream(client=redis_client, consumer="a", max_events=2).inserted == 2
        assert usage_ingest_stream(client=redis_client, consumer="a", max_events=10).inserted == 3
    assert UsageEvent.objects.count() == 5


def test_the_task_drains_the_stream_when_redis_is_configured(
    redis_client: redis.Redis, stream: str, settings: SettingsWrapper, django_capture_on_commit_callbacks: Capture
) -> None:
    settings.REDIS_URL = REDIS_URL
    _publish(redis_client, stream, 3)
    with django_capture_on_commit_callbacks(execute=True):
        assert usage_ingest_task() == {"inserted": 3, "duplicates": 0, "invalid": 0}
    assert _pending(redis_client, stream) == 0
