"""Ingestion is idempotent and never fails a batch for an invalid event."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from consumers import services
from consumers.models import UsageEvent
from consumers.usage import IngestResult, usage_ingest
from gateway_sync.contract.usage import encode_event
from tests.consumers.usage.conftest import make_event

pytestmark = pytest.mark.django_db


def test_ingesting_the_same_batch_twice_stores_each_event_once() -> None:
    batch = [encode_event(make_event()) for _ in range(3)]
    assert usage_ingest(events=batch) == IngestResult(inserted=3)
    assert usage_ingest(events=batch) == IngestResult(duplicates=3)
    assert UsageEvent.objects.count() == 3


def test_an_event_repeated_within_a_batch_is_stored_once() -> None:
    event = make_event()
    assert usage_ingest(events=[event, encode_event(event)]) == IngestResult(inserted=1, duplicates=1)


def test_invalid_events_are_counted_and_the_rest_of_the_batch_is_stored(caplog: pytest.LogCaptureFixture) -> None:
    batch = [b"garbage", encode_event(make_event()), b'{"event_id": "x"}', make_event(status=42)]
    assert usage_ingest(events=batch) == IngestResult(inserted=1, invalid=3)
    assert UsageEvent.objects.count() == 1
    assert caplog.text.count("usage event refused") == 3


def test_every_field_is_stored() -> None:
    event = make_event(
        app_id=7, tool_name="search", guardrail_actions=("block:keyword",), tokens_estimated=True, limit_decision="ok"
    )
    usage_ingest(events=[event])
    row = UsageEvent.objects.get()
    assert row.event_id == event.event_id
    assert row.at == dt.datetime.fromtimestamp(event.at, tz=dt.UTC)
    assert (row.app_id, row.product_id, row.key_prefix, row.protocol, row.status) == (7, 1, "sk_abc", "llm", 200)
    assert (row.prompt_tokens, row.completion_tokens, row.tokens_estimated, row.cost_microusd) == (10, 20, True, 300)
    assert (row.tool_name, row.guardrail_actions, row.limit_decision) == ("search", ["block:keyword"], "ok")


def test_events_of_a_deleted_app_are_still_ingested() -> None:
    assert usage_ingest(events=[make_event(app_id=999_999, product_id=888_888)]).inserted == 1


def test_ingestion_records_when_each_key_was_last_used(owner, app) -> None:
    key, _plaintext = services.api_key_create(actor=owner, app=app, name="ci")
    other, _ = services.api_key_create(actor=owner, app=app, name="unused")
    now = time.time()

    def event(at: float, **fields):
        return make_event(app_id=app.id, key_prefix=key.prefix, at=at, **fields)

    usage_ingest(events=[event(now - 60), event(now - 5), event(now - 30)])
    key.refresh_from_db()
    assert key.last_used_at == dt.datetime.fromtimestamp(now - 5, tz=dt.UTC)
    usage_ingest(events=[event(now - 3600)])  # an older event, ingested late
    key.refresh_from_db()
    assert key.last_used_at == dt.datetime.fromtimestamp(now - 5, tz=dt.UTC)
    # A refused request (no app) carries no key: it does not count as a use.
    usage_ingest(events=[make_event(app_id=None, key_prefix=other.prefix, at=now)])
    other.refresh_from_db()
    assert other.last_used_at is None
