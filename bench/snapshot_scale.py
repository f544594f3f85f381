"""Snapshot scale: compile 100k keys and 10k routes, then apply them in a worker.

Fills a scratch PostgreSQL database (``platform_bench`` by default; it is emptied first)
with one provider, 10,000 REST products each with a published version, a default plan and
a route with two targets; one app subscribed to every product; and 100,000 keys. Then it
measures, over several rounds:

- compile: ``compile_snapshot`` (the database to Structs) + canonical encoding + sha256;
- apply: what a worker does with the payload (checksum, validated decode, index build,
  swap), with the worker's own code.

Goals (issue 5): compile under 2 s; apply under 200 ms. Results go to
bench/results/snapshot_scale.json.

Run: ``make bench-snapshot`` (or ``.venv/bin/python bench/snapshot_scale.py``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/platform_bench")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def _ensure_database(url: str) -> None:
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _fill(keys: int, routes: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from accounts.models import Organization
    from accounts.tokens import keyed_hash
    from consumers.models import ApiKey, ConsumerApp, Plan, Subscription
    from gateway_sync.models_routes import Route, RouteTarget
    from marketplace.models import Product, ProductVersion

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        tables = ", ".join(
            f'"{t}"'
            for t in connection.introspection.table_names()
            if t.startswith(("consumers_", "marketplace_product", "gateway_sync_route", "gateway_sync_canary"))
        )
        cursor.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    provider, _ = Organization.objects.get_or_create(slug="bench-provider", defaults={"name": "Bench provider"})
    consumer, _ = Organization.objects.get_or_create(slug="bench-consumer", defaults={"name": "Bench consumer"})
    now = timezone.now()
    products = Product.objects.bulk_create(
        Product(organization=provider, kind="rest_api", slug=f"p{i}", name=f"P{i}", summary="s") for i in range(routes)
    )
    ProductVersion.objects.bulk_create(
        ProductVersion(
            product=p,
            version="1.0.0",
            status="published",
            published_at=now,
            upstream_url=f"https://up{p.pk % 50}.example.com",
        )
        for p in products
    )
    plans = Plan.objects.bulk_create(
        Plan(product=p, name="Free", is_default=True, requests_per_minute=600) for p in products
    )
    app = ConsumerApp.objects.create(organization=consumer, name="Bench app")
    Subscription.objects.bulk_create(
        Subscription(app=app, product=p, plan=plan, status="approved") for p, plan in zip(products, plans, strict=True)
    )
    route_rows = Route.objects.bulk_create(Route(product=p, name="r", path_prefix=f"/v{p.pk % 7}") for p in products)
    RouteTarget.objects.bulk_create(
        RouteTarget(route=r, name=name, upstream_url=f"https://{name}{r.pk % 50}.example.com", weight=weight)
        for r in route_rows
        for name, weight in (("a", 90), ("b", 10))
    )
    ApiKey.objects.bulk_create(
        (
            ApiKey(app=app, name="k", prefix=f"sk-{i:08d}", key_hash=keyed_hash(f"sk-{i:08d}{'x' * 40}"))
            for i in range(keys)
        ),
        batch_size=5_000,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--routes", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "snapshot_scale.json")
    args = parser.parse_args()
    _ensure_database(os.environ["DATABASE_URL"])

    import django

    django.setup()
    from gateway_sync.compiler import compile_snapshot
    from gateway_sync.contract import codec
    from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder

    started = time.perf_counter()
    _fill(args.keys, args.routes)
    fill_s = time.perf_counter() - started

    compile_s, apply_s, sizes = [], [], []
    holder = SnapshotHolder()
    for round_number in range(args.rounds):
        gc.collect()
        t0 = time.perf_counter()
        snapshot = compile_snapshot(version=round_number + 1, source_generation=round_number + 1)
        payload = codec.encode_snapshot(snapshot)
        sha = codec.sha256_hex(payload)
        t1 = time.perf_counter()
        decoded = codec.decode_snapshot(payload, expected_sha256=sha)
        holder.swap(CompiledSnapshot.build(decoded, sha256=sha))
        t2 = time.perf_counter()
        compile_s.append(t1 - t0)
        apply_s.append(t2 - t1)
        sizes.append(len(payload))
    assert len(snapshot.keys) == args.keys and len(snapshot.routes) == args.routes  # noqa: S101,PT018

    result = {
        "benchmark": "snapshot_scale",
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "keys": args.keys,
        "routes": args.routes,
        "payload_bytes": sizes[-1],
        "fill_s": round(fill_s, 2),
        "compile_s": {"median": round(statistics.median(compile_s), 3), "max": round(max(compile_s), 3)},
        "apply_s": {"median": round(statistics.median(apply_s), 3), "max": round(max(apply_s), 3)},
        "goals": {"compile_s": 2.0, "apply_s": 0.2},
    }
    result["met"] = result["compile_s"]["max"] < 2.0 and result["apply_s"]["max"] < 0.2  # type: ignore[index]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
