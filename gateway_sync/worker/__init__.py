"""The gateway worker: the data plane, pure asyncio. It imports no Django (a test checks).

- ``settings``: WorkerSettings.from_env().
- ``state``: CompiledSnapshot (a snapshot plus its lookup indexes) and SnapshotHolder (the
  one reference requests read it through).
- ``sources`` and ``loader``: finding, verifying and swapping in snapshots.
- ``heartbeat``: what the fleet view shows of this worker.
- ``app`` and ``__main__``: the aiohttp application and ``python -m gateway_sync.worker``.

docs/worker.md describes the whole.
"""
