"""CompiledSnapshot's indexes, and the holder's swap: a request keeps what it started with."""

from __future__ import annotations

import pytest

from gateway_sync.contract import encode_snapshot, sha256_hex
from gateway_sync.contract import schema as s
from gateway_sync.worker.state import CompiledSnapshot, SnapshotHolder
from tests.worker.snapshots import build_snapshot, key_hash


def compiled(version: int, **fields: object) -> CompiledSnapshot:
    snapshot = build_snapshot(version, **fields)  # type: ignore[arg-type]
    return CompiledSnapshot.build(snapshot, sha256=sha256_hex(encode_snapshot(snapshot)))


def test_every_lookup_the_request_path_needs_is_one_dict_access():
    snap = compiled(4, keys=5)
    assert snap.version == 4
    assert snap.source_generation == 40
    assert snap.keys_by_hash[key_hash(3)].prefix == "sk-00000003"
    assert len(snap.keys_by_hash) == 5
    assert snap.apps_by_id[3].name == "App"
    assert snap.products_by_slug["llm"].id == 2
    assert snap.products_by_id[1].slug == "echo"
    assert snap.subscriptions[(3, 1)].plan_id == 5
    assert (3, 99) not in snap.subscriptions
    assert snap.plans_by_id[6].name == "Tokens"
    assert snap.guardrails_by_id[4].name == "No secrets"


def test_routes_are_listed_per_product_highest_priority_first():
    snap = compiled(1)
    assert [route.id for route in snap.routes_by_product[1]] == [2, 1]
    assert 2 not in snap.routes_by_product


def test_routes_of_equal_priority_keep_a_stable_order():
    base = build_snapshot(1)
    target = base.routes[0].targets
    routes = tuple(s.Route(id=i, product_id=1, priority=5, match=s.RouteMatch(), targets=target) for i in (9, 3, 7))
    snap = CompiledSnapshot.build(
        s.Snapshot(
            version=1, created_at=0.0, source_generation=1, products=base.products, routes=routes,
            guardrails=base.guardrails,
        ),
        sha256="x",
    )  # fmt: skip
    assert [route.id for route in snap.routes_by_product[1]] == [3, 7, 9]


def test_of_two_subscriptions_to_one_product_the_longer_lasting_wins():
    base = build_snapshot(1)
    subs = (
        s.Subscription(id=1, app_id=3, product_id=1, plan_id=5, expires_at=100.0),
        s.Subscription(id=2, app_id=3, product_id=1, plan_id=5),
        s.Subscription(id=3, app_id=3, product_id=1, plan_id=5, expires_at=200.0),
    )
    snapshot = s.Snapshot(
        version=1, created_at=0.0, source_generation=1, products=base.products, plans=base.plans,
        apps=base.apps, subscriptions=subs,
    )  # fmt: skip
    assert CompiledSnapshot.build(snapshot, sha256="x").subscriptions[(3, 1)].id == 2


def test_the_indexes_cannot_be_changed_through_their_types():
    snap = compiled(1)
    with pytest.raises(AttributeError):
        snap.sha256 = "other"  # type: ignore[misc]


def test_a_request_holding_the_old_snapshot_still_sees_old_data_after_a_swap():
    holder = SnapshotHolder()
    assert holder.current() is None
    holder.swap(compiled(1, app_name="Before"))
    in_flight = holder.current()  # what a request takes once, when it starts

    holder.swap(compiled(2, app_name="After"))

    assert in_flight is not None
    assert in_flight.version == 1
    assert in_flight.apps_by_id[3].name == "Before"
    now = holder.current()
    assert now is not None
    assert (now.version, now.apps_by_id[3].name) == (2, "After")
    assert holder.version == 2


def test_the_holder_records_applies_refusals_and_errors():
    clock = iter([100.0, 105.0, 106.0, 107.0]).__next__
    holder = SnapshotHolder(clock=clock)
    holder.swap(compiled(1), announced_at=99.5)
    assert (holder.applied_at, holder.lag_s, holder.counters.applied) == (100.0, 0.5, 1)

    holder.refuse(2, "snapshot 2 refused: checksum mismatch")
    assert holder.last_error == "snapshot 2 refused: checksum mismatch"
    assert (holder.counters.refused, holder.counters.last_refused_version) == (1, 2)
    assert holder.version == 1, "a refusal leaves the current snapshot in place"

    holder.source_failed("Redis is down")
    assert (holder.last_error, holder.counters.source_errors) == ("Redis is down", 1)
    holder.check_succeeded()
    assert holder.last_error == ""

    holder.swap(compiled(3))
    assert holder.counters.as_dict() == {"applied": 2, "refused": 1, "source_errors": 1, "last_refused_version": 2}
    assert holder.lag_s is None


def test_the_holder_signals_changes_for_the_heartbeat():
    holder = SnapshotHolder()
    holder.swap(compiled(1))
    assert holder.changed.is_set()
    holder.changed.clear()
    holder.source_failed("down")
    assert holder.changed.is_set()
    holder.changed.clear()
    holder.source_failed("down")
    assert not holder.changed.is_set(), "the same error again is no news"
