"""Finding, verifying and applying snapshots.

``SnapshotLoader.run()``:

1. checks the source at once, then every ``poll_interval_s`` (0.2 s for the embedded
   folder, 2 s with Redis, where polling is the safety net for a missed message), and, when
   the source announces (Redis pub/sub), at every announcement;
2. at each check reads the latest pointer and stops there unless it names a version newer
   than the one served (older or equal ones are ignored: a rollback is published as a new
   version), or the very pointer it refused last time;
3. fetches the payload and, in a thread, verifies it (checksum, schema, cross-references,
   the pointer's version and generation) and builds the indexes: a 100k-key snapshot never
   blocks the event loop;
4. swaps the result in, or, on any failure, keeps the current snapshot and records the
   error on the holder (for /readyz and the heartbeat) and in the log, and carries on.

Until a first snapshot is applied the worker is not ready; the checks go on meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging

from gateway_sync.contract.codec import SnapshotError, decode_snapshot
from gateway_sync.worker.settings import WorkerSettings
from gateway_sync.worker.sources import AnnouncingSource, Pointer, SnapshotSource, SourceError
from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    NOTHING_PUBLISHED = "nothing published"
    UP_TO_DATE = "up to date"
    APPLIED = "applied"
    REFUSED = "refused"
    STILL_REFUSED = "still refused"
    SOURCE_ERROR = "source error"


def compile_payload(payload: bytes, pointer: Pointer) -> CompiledSnapshot:
    """The payload, verified against its pointer and indexed; SnapshotError if it must not
    be applied. CPU-bound: the loader runs it in a thread."""
    snapshot = decode_snapshot(payload, expected_sha256=pointer.sha256)
    if snapshot.version != pointer.version:
        raise SnapshotError(f"the pointer names version {pointer.version} but the payload holds {snapshot.version}")
    if snapshot.source_generation != pointer.source_generation:
        raise SnapshotError(
            f"the pointer names generation {pointer.source_generation} "
            f"but the payload holds {snapshot.source_generation}"
        )
    return CompiledSnapshot.build(snapshot, sha256=pointer.sha256)


class SnapshotLoader:
    def __init__(self, holder: SnapshotHolder, source: SnapshotSource, settings: WorkerSettings) -> None:
        self.holder = holder
        self.source = source
        self.poll_interval_s = settings.poll_interval_s
        # Checks come from the poller and the listener: one at a time, so two never fetch
        # and compile the same snapshot. (Readers never wait on this lock.)
        self._lock = asyncio.Lock()
        # (version, sha256, error) of the pointer refused last: not fetched again.
        self._refused: tuple[int, str, str] | None = None
        self._logged = ""
        self._failing = False

    async def run(self) -> None:
        """Check, poll and listen until cancelled. Never returns; a failed check is
        reported, not raised."""
        log.info("loading snapshots from %s, polling every %.2f s", self.source.description, self.poll_interval_s)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._poll(), name="snapshot-poll")
            if isinstance(self.source, AnnouncingSource):
                group.create_task(self._listen(self.source), name="snapshot-listen")

    async def _poll(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self.poll_interval_s)

    async def _listen(self, source: AnnouncingSource) -> None:
        async with contextlib.aclosing(source.announcements()) as announcements:
            async for announced_at in announcements:
                await self.check(announced_at=announced_at)

    async def check(self, *, announced_at: float | None = None) -> Outcome:
        """Apply the latest snapshot if it is newer than the current one and valid."""
        async with self._lock:
            try:
                return await self._check(announced_at)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A bug, not a bad snapshot: still never worth losing the current snapshot.
                log.exception("snapshot check failed unexpectedly")
                self._failing = True
                self.holder.source_failed(f"snapshot check failed: {type(exc).__name__}: {exc}")
                return Outcome.SOURCE_ERROR

    async def _check(self, announced_at: float | None) -> Outcome:
        try:
            sighting = await self.source.latest()
        except SourceError as exc:
            return self._source_failed(str(exc))
        current = self.holder.version
        if sighting is None:
            self._recovered()
            self._log_once(logging.INFO, f"no snapshot published yet in {self.source.description}; waiting")
            return Outcome.NOTHING_PUBLISHED
        pointer = sighting.pointer
        if current is not None and pointer.version <= current:
            self._recovered()
            if pointer.version < current:
                self._log_once(logging.WARNING, f"latest is snapshot {pointer.version}, older than {current}: ignored")
            return Outcome.UP_TO_DATE
        if self._refused is not None and self._refused[:2] == (pointer.version, pointer.sha256):
            self._recovered(standing_error=self._refused[2])
            return Outcome.STILL_REFUSED
        try:
            payload = await self.source.fetch(pointer)
            compiled = await asyncio.to_thread(compile_payload, payload, pointer)
        except SourceError as exc:
            return self._source_failed(f"snapshot {pointer.version} could not be fetched: {exc}")
        except SnapshotError as exc:
            error = f"snapshot {pointer.version} refused: {exc}"
            self._refused = (pointer.version, pointer.sha256, error)
            log.error("%s; still serving snapshot %s", error, current)
            self._logged = error
            self.holder.refuse(pointer.version, error)
            return Outcome.REFUSED
        times = [t for t in (announced_at, sighting.announced_at) if t is not None]
        self.holder.swap(compiled, announced_at=min(times) if times else None)
        log.info(
            "applied snapshot %d (generation %d, sha256 %s…, %d keys), lag %s",
            compiled.version,
            compiled.source_generation,
            compiled.sha256[:12],
            len(compiled.keys_by_hash),
            "unknown" if self.holder.lag_s is None else f"{self.holder.lag_s * 1000:.0f} ms",
        )
        self._logged = ""
        self._failing = False
        return Outcome.APPLIED

    def _recovered(self, *, standing_error: str = "") -> None:
        """The source answered; ``standing_error`` is a refusal that still holds."""
        if self._failing:
            log.info("%s is readable again", self.source.description)
            self._failing = False
            self._logged = ""
        self.holder.check_succeeded(standing_error=standing_error)

    def _source_failed(self, error: str) -> Outcome:
        self._failing = True
        self._log_once(logging.WARNING, f"{error}; still serving snapshot {self.holder.version}")
        self.holder.source_failed(error)
        return Outcome.SOURCE_ERROR

    def _log_once(self, level: int, message: str) -> None:
        """Log ``message`` unless it is what the previous check logged: a folder or a Redis
        that stays broken is reported once, not five times a second."""
        if message != self._logged:
            log.log(level, "%s", message)
            self._logged = message
