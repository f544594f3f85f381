"""Snapshots and publishers for the worker's tests, with no Django.

The publishers write exactly what ``gateway_sync/announce.py`` writes (it imports Django,
so the worker's tests cannot use it): a payload file and a ``latest.json`` pointer, both by
rename, or the Redis payload key, the latest key and a message, in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import redis

from gateway_sync.contract import encode_snapshot, sha256_hex
from gateway_sync.contract import schema as s

CREATED_AT = 1_700_000_000.0


def key_hash(number: int) -> str:
    return hashlib.sha256(f"key-{number}".encode()).hexdigest()


def build_snapshot(version: int, *, keys: int = 3, generation: int | None = None, app_name: str = "App") -> s.Snapshot:
    """A small consistent world: a REST product with two routes, a model product, one app
    subscribed to both, ``keys`` keys, a guardrail."""
    upstream = s.Upstream(url="http://127.0.0.1:9101")
    return s.Snapshot(
        version=version,
        created_at=CREATED_AT + version,
        source_generation=version * 10 if generation is None else generation,
        products=(
            s.Product(
                id=1,
                slug="echo",
                kind="rest_api",
                organization_id=1,
                public=True,
                version_id=10,
                version="1.0.0",
                upstream=upstream,
                guardrail_ids=(4,),
            ),
            s.Product(
                id=2,
                slug="llm",
                kind="model_api",
                organization_id=1,
                public=True,
                version_id=20,
                version="2.0.0",
                upstream=s.Upstream(url="http://127.0.0.1:9102"),
            ),
        ),
        plans=(
            s.Plan(id=5, product_id=1, name="Free", requests_per_minute=100),
            s.Plan(id=6, product_id=2, name="Tokens", tokens_per_minute=1000),
        ),
        apps=(s.App(id=3, organization_id=2, name=app_name),),
        keys=tuple(s.Key(hash=key_hash(n), prefix=f"sk-{n:08d}", app_id=3) for n in range(keys)),
        subscriptions=(
            s.Subscription(id=9, app_id=3, product_id=1, plan_id=5),
            s.Subscription(id=10, app_id=3, product_id=2, plan_id=6),
        ),
        routes=(
            s.Route(
                id=1,
                product_id=1,
                priority=0,
                match=s.RouteMatch(),
                targets=(s.Target(id=1, name="a", upstream=upstream),),
            ),
            s.Route(
                id=2,
                product_id=1,
                priority=10,
                match=s.RouteMatch(path_prefix="/v2"),
                targets=(s.Target(id=2, name="b", upstream=upstream),),
            ),
        ),
        guardrails=(
            s.GuardrailPolicy(
                id=4, name="No secrets", rules=(s.GuardrailRule(kind="keyword", action="block", words=("secret",)),)
            ),
        ),
    )


def dangling_snapshot(version: int) -> s.Snapshot:
    """Well-formed JSON with a right checksum, but a key names an app that does not exist."""
    good = build_snapshot(version)
    return s.Snapshot(
        version=version,
        created_at=good.created_at,
        source_generation=good.source_generation,
        products=good.products,
        plans=good.plans,
        apps=good.apps,
        keys=(*good.keys, s.Key(hash="f" * 64, prefix="sk-dangling", app_id=404)),
        subscriptions=good.subscriptions,
        routes=good.routes,
        guardrails=good.guardrails,
    )


def _write_atomically(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(temporary, path)


class FolderPublisher:
    """gateway_sync.announce.FileAnnouncer's writes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def publish(self, snapshot: s.Snapshot) -> None:
        payload = encode_snapshot(snapshot)
        generation = snapshot.source_generation
        self.publish_payload(snapshot.version, payload, sha256=sha256_hex(payload), generation=generation)

    def publish_payload(self, version: int, payload: bytes, *, sha256: str, generation: int) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"snapshot-{version:012d}.json"
        _write_atomically(self.directory / name, payload)
        pointer = {"version": version, "sha256": sha256, "source_generation": generation, "file": name}
        _write_atomically(self.directory / "latest.json", json.dumps(pointer).encode())


class RedisPublisher:
    """gateway_sync.announce.RedisAnnouncer's writes."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def publish(self, snapshot: s.Snapshot) -> None:
        payload = encode_snapshot(snapshot)
        generation = snapshot.source_generation
        self.publish_payload(snapshot.version, payload, sha256=sha256_hex(payload), generation=generation)

    def publish_payload(self, version: int, payload: bytes | None, *, sha256: str, generation: int) -> None:
        """``payload=None`` announces a version whose payload key is missing."""
        pointer = json.dumps({"version": version, "sha256": sha256, "source_generation": generation})
        with self.client.pipeline(transaction=True) as pipe:
            if payload is not None:
                pipe.set(f"gateway:snapshot:{version}", payload, ex=7 * 24 * 3600)
            pipe.set("gateway:snapshot:latest", pointer)
            pipe.publish("gateway:snapshots", pointer)
            pipe.execute()
