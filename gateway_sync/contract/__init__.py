"""The snapshot contract between the portal and the gateway workers. Pure Python: it
imports no Django, so workers can use it."""

from __future__ import annotations

from gateway_sync.contract.codec import SnapshotError, decode_snapshot, encode_snapshot, sha256_hex
from gateway_sync.contract.schema import SCHEMA_VERSION, Snapshot

__all__ = ["SCHEMA_VERSION", "Snapshot", "SnapshotError", "decode_snapshot", "encode_snapshot", "sha256_hex"]
