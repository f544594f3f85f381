"""The loader: newer snapshots are applied, older or equal ones ignored, bad ones refused
(the current one stays, the error is recorded), and nothing it meets stops it."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

import pytest

from gateway_sync.contract import encode_snapshot, sha256_hex
from gateway_sync.worker.loader import Outcome, SnapshotLoader
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.sources import FileSnapshotSource, Pointer, Sighting, SourceError
from gateway_sync.worker.state import SnapshotHolder
from tests.worker.snapshots import FolderPublisher, build_snapshot, dangling_snapshot

pytestmark = pytest.mark.anyio


def settings_for(snapshot_dir: Path, *, poll_interval_s: float = 0.01) -> WorkerSettings:
    return WorkerSettings(snapshot_dir=snapshot_dir, worker_id="test", poll_interval_s=poll_interval_s)


def loader_for(snapshot_dir: Path, **options: float) -> SnapshotLoader:
    return SnapshotLoader(SnapshotHolder(), FileSnapshotSource(snapshot_dir), settings_for(snapshot_dir, **options))


async def eventually(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


async def test_nothing_published_yet_leaves_the_worker_unready(snapshot_dir):
    loader = loader_for(snapshot_dir)
    assert await loader.check() is Outcome.NOTHING_PUBLISHED
    assert loader.holder.current() is None
    assert loader.holder.last_error == ""


async def test_the_first_snapshot_and_every_newer_one_are_applied(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(1))
    assert await loader.check() is Outcome.APPLIED
    assert loader.holder.version == 1
    folder.publish(build_snapshot(2, keys=7))
    assert await loader.check() is Outcome.APPLIED
    current = loader.holder.current()
    assert current is not None
    assert (current.version, current.source_generation, len(current.keys_by_hash)) == (2, 20, 7)
    assert loader.holder.counters.applied == 2


async def test_an_older_or_equal_version_is_ignored(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(3))
    await loader.check()
    folder.publish(build_snapshot(2, app_name="Older"))
    assert await loader.check() is Outcome.UP_TO_DATE
    folder.publish(build_snapshot(3, app_name="Same version, other content"))
    assert await loader.check() is Outcome.UP_TO_DATE
    current = loader.holder.current()
    assert current is not None
    assert (current.version, current.apps_by_id[3].name) == (3, "App")


def _bad_checksum(folder: FolderPublisher) -> None:
    payload = encode_snapshot(build_snapshot(2))
    folder.publish_payload(2, payload, sha256=sha256_hex(payload + b" "), generation=20)


def _bad_json(folder: FolderPublisher) -> None:
    payload = encode_snapshot(build_snapshot(2))[:-10]
    folder.publish_payload(2, payload, sha256=sha256_hex(payload), generation=20)


def _dangling_reference(folder: FolderPublisher) -> None:
    folder.publish(dangling_snapshot(2))


def _unknown_field(folder: FolderPublisher) -> None:
    document = json.loads(encode_snapshot(build_snapshot(2)))
    document["apps"][0]["surprise"] = True
    payload = json.dumps(document).encode()
    folder.publish_payload(2, payload, sha256=sha256_hex(payload), generation=20)


def _version_mismatch(folder: FolderPublisher) -> None:
    payload = encode_snapshot(build_snapshot(5))
    folder.publish_payload(2, payload, sha256=sha256_hex(payload), generation=50)


def _generation_mismatch(folder: FolderPublisher) -> None:
    payload = encode_snapshot(build_snapshot(2))
    folder.publish_payload(2, payload, sha256=sha256_hex(payload), generation=21)


@pytest.mark.parametrize(
    ("publish_bad", "reason"),
    [
        (_bad_checksum, "checksum mismatch"),
        (_bad_json, "not valid JSON"),
        (_dangling_reference, "key sk-dangling names unknown app 404"),
        (_unknown_field, "schema"),
        (_version_mismatch, "the pointer names version 2 but the payload holds 5"),
        (_generation_mismatch, "the pointer names generation 21 but the payload holds 20"),
    ],
)
async def test_a_corrupt_snapshot_is_refused_and_the_last_good_one_kept(snapshot_dir, folder, publish_bad, reason):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(1))
    await loader.check()

    publish_bad(folder)
    assert await loader.check() is Outcome.REFUSED

    holder = loader.holder
    assert holder.version == 1
    assert holder.last_error.startswith("snapshot 2 refused: ")
    assert reason in holder.last_error
    assert (holder.counters.refused, holder.counters.last_refused_version) == (1, 2)
    # The same pointer is not fetched and refused again at every poll; the error stands.
    assert await loader.check() is Outcome.STILL_REFUSED
    assert holder.counters.refused == 1
    assert holder.last_error.startswith("snapshot 2 refused: ")

    folder.publish(build_snapshot(3))
    assert await loader.check() is Outcome.APPLIED
    assert (holder.version, holder.last_error) == (3, "")


async def test_a_refused_version_republished_with_a_right_checksum_is_applied(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    _bad_checksum(folder)
    assert await loader.check() is Outcome.REFUSED
    assert loader.holder.current() is None
    folder.publish(build_snapshot(2))
    assert await loader.check() is Outcome.APPLIED


async def test_an_unreadable_pointer_or_payload_keeps_the_current_snapshot(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(1))
    await loader.check()

    (snapshot_dir / "latest.json").write_text("{not json")
    assert await loader.check() is Outcome.SOURCE_ERROR
    assert "latest.json is not a snapshot pointer" in loader.holder.last_error

    folder.publish(build_snapshot(2))
    (snapshot_dir / "snapshot-000000000002.json").unlink()
    assert await loader.check() is Outcome.SOURCE_ERROR
    assert loader.holder.last_error.startswith("snapshot 2 could not be fetched: ")
    assert loader.holder.version == 1
    assert loader.holder.counters.source_errors == 2
    assert loader.holder.counters.refused == 0, "an unreadable payload is retried, not refused"

    folder.publish(build_snapshot(2))
    assert await loader.check() is Outcome.APPLIED
    assert loader.holder.last_error == ""


async def test_a_refusal_is_reported_again_once_the_source_recovers(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(1))
    await loader.check()
    _dangling_reference(folder)
    await loader.check()
    pointer = (snapshot_dir / "latest.json").read_bytes()
    (snapshot_dir / "latest.json").write_text("garbage")
    await loader.check()
    assert "not a snapshot pointer" in loader.holder.last_error
    (snapshot_dir / "latest.json").write_bytes(pointer)
    assert await loader.check() is Outcome.STILL_REFUSED
    assert loader.holder.last_error.startswith("snapshot 2 refused: ")


class BrokenSource:
    description = "a source with a bug"

    async def latest(self) -> Sighting | None:
        raise KeyError("bug")

    async def fetch(self, pointer: Pointer) -> bytes:
        raise AssertionError

    async def aclose(self) -> None:
        return None


async def test_even_an_unexpected_exception_is_reported_not_raised(tmp_path):
    loader = SnapshotLoader(SnapshotHolder(), BrokenSource(), settings_for(tmp_path))
    assert await loader.check() is Outcome.SOURCE_ERROR
    assert loader.holder.last_error == "snapshot check failed: KeyError: 'bug'"


async def test_run_loads_at_start_and_polls_for_newer_snapshots(snapshot_dir, folder):
    loader = loader_for(snapshot_dir)
    task = asyncio.create_task(loader.run())
    try:
        await asyncio.sleep(0.05)
        assert loader.holder.current() is None, "not ready until a snapshot is published"
        folder.publish(build_snapshot(1))
        await eventually(lambda: loader.holder.version == 1)
        folder.publish(build_snapshot(2))
        await eventually(lambda: loader.holder.version == 2)
        assert loader.holder.lag_s is not None
        assert loader.holder.lag_s < 1.0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class AnnouncingFolder(FileSnapshotSource):
    """A folder that also announces, as Redis does."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.queue: asyncio.Queue[float] = asyncio.Queue()

    async def announcements(self) -> AsyncGenerator[float, None]:
        while True:
            yield await self.queue.get()


async def test_an_announcement_is_applied_without_waiting_for_the_poll(snapshot_dir, folder):
    source = AnnouncingFolder(snapshot_dir)
    folder.publish(build_snapshot(1))
    loader = SnapshotLoader(SnapshotHolder(), source, settings_for(snapshot_dir, poll_interval_s=3600))
    task = asyncio.create_task(loader.run())
    try:
        await eventually(lambda: loader.holder.version == 1)
        folder.publish(build_snapshot(2))
        source.queue.put_nowait(time.time())
        # The poll would take an hour: only the announcement can explain this.
        await eventually(lambda: loader.holder.version == 2, timeout=1.0)
        assert loader.holder.lag_s is not None
        assert loader.holder.lag_s < 1.0
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_compiling_a_100k_key_snapshot_never_blocks_the_event_loop(snapshot_dir, folder):
    folder.publish(build_snapshot(1, keys=100_000))
    loader = loader_for(snapshot_dir)
    gaps: list[float] = []

    async def tick() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    try:
        started = time.perf_counter()
        assert await loader.check() is Outcome.APPLIED
        elapsed = time.perf_counter() - started
    finally:
        ticker.cancel()
        with pytest.raises(asyncio.CancelledError):
            await ticker
    current = loader.holder.current()
    assert current is not None
    assert len(current.keys_by_hash) == 100_000
    # The loop kept turning while the thread decoded and indexed: many ticks, and no stall
    # near the whole load's length (which is what decoding on the loop would cost). Relative,
    # not absolute: on a busy machine everything stretches, the ratio does not.
    assert len(gaps) > 10, (elapsed, len(gaps))
    assert max(gaps) < elapsed / 2, (elapsed, max(gaps))


async def test_a_source_error_is_logged_once_not_at_every_poll(snapshot_dir, folder, caplog):
    loader = loader_for(snapshot_dir)
    folder.publish(build_snapshot(1))
    await loader.check()
    (snapshot_dir / "latest.json").write_text("[]")
    for _ in range(5):
        await loader.check()
    warnings = [r for r in caplog.records if "not a snapshot pointer" in r.getMessage()]
    assert len(warnings) == 1


def test_source_error_is_what_sources_raise():
    assert issubclass(SourceError, Exception)
