"""Publishing: store, skip when nothing changed, announce by file or through Redis."""

from __future__ import annotations

import json
import os
import threading

import pytest
import redis
from django.core.management import call_command

from gateway_sync.announce import REDIS_CHANNEL, REDIS_LATEST_KEY, FileAnnouncer, RedisAnnouncer
from gateway_sync.contract import decode_snapshot
from gateway_sync.models import SnapshotRecord
from gateway_sync.publish import snapshot_publish
from gateway_sync.services import config_mark_changed
from tests.gateway_sync.conftest import World

pytestmark = pytest.mark.django_db
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def test_a_change_is_published_once(world: World, tmp_path, django_capture_on_commit_callbacks):
    announcer = FileAnnouncer(tmp_path)
    config_mark_changed(reason="test")
    with django_capture_on_commit_callbacks(execute=True):
        first = snapshot_publish(reason="change", announcer=announcer)
    assert first.record is not None
    assert snapshot_publish(reason="again", announcer=announcer).record is None, "nothing changed since"

    pointer = json.loads((tmp_path / "latest.json").read_text())
    assert pointer["version"] == first.record.version
    payload = (tmp_path / pointer["file"]).read_bytes()
    snapshot = decode_snapshot(payload, expected_sha256=pointer["sha256"])
    assert snapshot.source_generation == first.record.source_generation


def test_a_new_generation_with_the_same_content_publishes_nothing(world: World, tmp_path):
    config_mark_changed(reason="one")
    assert snapshot_publish(reason="one", announcer=FileAnnouncer(tmp_path)).record is not None
    config_mark_changed(reason="a change that changed nothing the gateway sees")
    result = snapshot_publish(reason="two", announcer=FileAnnouncer(tmp_path))
    assert result.record is None
    assert "same content" in result.skipped
    assert SnapshotRecord.objects.get().source_generation == 2, "the latest now covers the generation"


def test_force_publishes_a_new_version_anyway(world: World, tmp_path):
    snapshot_publish(reason="first", force=True, announcer=FileAnnouncer(tmp_path))
    second = snapshot_publish(reason="second", force=True, announcer=FileAnnouncer(tmp_path)).record
    assert second is not None
    assert second.version == 2
    assert list(SnapshotRecord.objects.values_list("version", flat=True)) == [2, 1]


def test_the_management_command_forces_a_version(world: World, capsys):
    call_command("snapshot_publish", "--reason", "operator")
    assert "Published snapshot 1" in capsys.readouterr().out
    assert SnapshotRecord.objects.get().reason == "operator"


def test_the_redis_announcer_stores_points_and_notifies(world: World):
    client = redis.Redis.from_url(REDIS_URL)
    client.delete(REDIS_LATEST_KEY)
    pubsub = client.pubsub()
    pubsub.subscribe(REDIS_CHANNEL)
    pubsub.get_message(timeout=1)  # the subscription confirmation
    record = snapshot_publish(reason="redis", force=True, announcer=RedisAnnouncer(REDIS_URL)).record
    assert record is not None
    record.refresh_from_db()
    RedisAnnouncer(REDIS_URL).announce(
        version=record.version,
        sha256=record.sha256,
        source_generation=record.source_generation,
        payload=bytes(record.payload),
    )
    pointer = json.loads(client.get(REDIS_LATEST_KEY) or b"{}")
    assert pointer["version"] == record.version
    payload = client.get(f"gateway:snapshot:{record.version}")
    assert payload is not None
    decode_snapshot(payload, expected_sha256=pointer["sha256"])
    message = pubsub.get_message(timeout=2)
    assert message is not None
    assert json.loads(message["data"])["version"] == record.version
    pubsub.close()
    client.close()


def test_file_announcements_are_atomic(world: World, tmp_path):
    """A reader polling the folder never sees a half-written pointer or payload."""
    announcer = FileAnnouncer(tmp_path)
    record = snapshot_publish(reason="x", force=True, announcer=announcer).record
    assert record is not None
    payload = bytes(record.payload)
    stop = threading.Event()
    problems: list[str] = []

    def reader() -> None:
        while not stop.is_set():
            try:
                pointer = json.loads((tmp_path / "latest.json").read_text())
                decode_snapshot((tmp_path / pointer["file"]).read_bytes(), expected_sha256=pointer["sha256"])
            except FileNotFoundError:
                continue
            except Exception as exc:
                problems.append(repr(exc))

    thread = threading.Thread(target=reader)
    thread.start()
    for version in range(2, 60):
        announcer.announce(version=version, sha256=record.sha256, source_generation=1, payload=payload)
    stop.set()
    thread.join()
    assert problems == []
    assert len(list(tmp_path.glob("snapshot-*.json"))) <= 20, "old files are pruned"
