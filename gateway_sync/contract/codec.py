"""Canonical encoding, checksums and validated decoding of snapshots.

The canonical form is JSON with sorted keys and no insignificant whitespace, so the same
snapshot always has the same bytes and the same sha256. Decoding checks the checksum, the
schema (types, required fields, no unknown fields) and the cross-references (every key's
app exists, every subscription's app, product and plan exist, ...), and refuses anything
else with a SnapshotError: a worker never applies half a snapshot.
"""

from __future__ import annotations

import hashlib

import msgspec

from gateway_sync.contract.schema import SCHEMA_VERSION, Snapshot

_encoder = msgspec.json.Encoder(order="sorted")
_decoder = msgspec.json.Decoder(Snapshot)


class SnapshotError(Exception):
    """A snapshot that must not be applied: corrupt, of an unknown schema, or inconsistent."""


def encode_snapshot(snapshot: Snapshot) -> bytes:
    return _encoder.encode(snapshot)


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


def decode_snapshot(payload: bytes, *, expected_sha256: str | None = None) -> Snapshot:
    """The snapshot in ``payload``, fully validated; SnapshotError otherwise."""
    if expected_sha256 is not None and sha256_hex(payload) != expected_sha256:
        raise SnapshotError("checksum mismatch: the payload is not the announced snapshot")
    try:
        snapshot = _decoder.decode(payload)
    except msgspec.ValidationError as exc:
        raise SnapshotError(f"schema: {exc}") from None
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not valid JSON: {exc}") from None
    if snapshot.schema_version != SCHEMA_VERSION:
        raise SnapshotError(f"schema version {snapshot.schema_version} is not {SCHEMA_VERSION}")
    problems = cross_reference_problems(snapshot)
    if problems:
        shown = "; ".join(problems[:10])
        more = f" (and {len(problems) - 10} more)" if len(problems) > 10 else ""
        raise SnapshotError(f"inconsistent: {shown}{more}")
    return snapshot


def _duplicates(label: str, values: list[object]) -> list[str]:
    seen: set[object] = set()
    repeated = sorted({str(v) for v in values if v in seen or seen.add(v)})  # type: ignore[func-returns-value]
    return [f"duplicate {label} {value}" for value in repeated]


def cross_reference_problems(snapshot: Snapshot) -> list[str]:
    """Every dangling reference or duplicate identity in the snapshot."""
    products = {p.id for p in snapshot.products}
    apps = {a.id for a in snapshot.apps}
    plans = {p.id: p.product_id for p in snapshot.plans}
    guardrails = {g.id for g in snapshot.guardrails}
    problems: list[str] = []
    problems += _duplicates("product id", [p.id for p in snapshot.products])
    problems += _duplicates("product slug", [p.slug for p in snapshot.products])
    problems += _duplicates("app id", [a.id for a in snapshot.apps])
    problems += _duplicates("plan id", [p.id for p in snapshot.plans])
    problems += _duplicates("key hash", [k.hash for k in snapshot.keys])
    problems += _duplicates("route id", [r.id for r in snapshot.routes])
    problems += _duplicates("guardrail id", [g.id for g in snapshot.guardrails])
    for plan in snapshot.plans:
        if plan.product_id not in products:
            problems.append(f"plan {plan.id} names unknown product {plan.product_id}")
    for key in snapshot.keys:
        if key.app_id not in apps:
            problems.append(f"key {key.prefix} names unknown app {key.app_id}")
        problems += [f"key {key.prefix} names unknown product {p}" for p in key.product_ids if p not in products]
    for sub in snapshot.subscriptions:
        if sub.app_id not in apps:
            problems.append(f"subscription {sub.id} names unknown app {sub.app_id}")
        if sub.product_id not in products:
            problems.append(f"subscription {sub.id} names unknown product {sub.product_id}")
        if plans.get(sub.plan_id) != sub.product_id:
            problems.append(f"subscription {sub.id} names plan {sub.plan_id}, not a plan of product {sub.product_id}")
    for route in snapshot.routes:
        if route.product_id not in products:
            problems.append(f"route {route.id} names unknown product {route.product_id}")
        target_ids = {t.id for t in route.targets}
        if not target_ids:
            problems.append(f"route {route.id} has no target")
        elif not any(t.weight > 0 for t in route.targets):
            problems.append(f"route {route.id} has no target with a positive weight")
        problems += _duplicates(f"target id in route {route.id}", [t.id for t in route.targets])
        problems += [
            f"route {route.id} falls back to unknown target {t}"
            for t in route.fallback_target_ids
            if t not in target_ids
        ]
        if route.canary is not None and route.canary.target_id not in target_ids:
            problems.append(f"route {route.id}'s canary names unknown target {route.canary.target_id}")
        problems += [
            f"route {route.id} names unknown guardrail {g}" for g in route.guardrail_ids if g not in guardrails
        ]
    for product in snapshot.products:
        problems += [
            f"product {product.id} names unknown guardrail {g}" for g in product.guardrail_ids if g not in guardrails
        ]
    for plan in snapshot.plans:
        problems += [f"plan {plan.id} names unknown guardrail {g}" for g in plan.guardrail_ids if g not in guardrails]
    return problems
