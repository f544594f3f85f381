"""routing.py: route matching and weighted/canary target choice, with seeded randomness."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from multidict import CIMultiDict

from gateway_sync.contract import schema as s
from gateway_sync.worker.routing import path_matches, pick_target, select_route

UP = s.Upstream(url="http://127.0.0.1:1")
PICKS = 2_000


def target(id: int, weight: int = 100) -> s.Target:
    return s.Target(id=id, name=f"t{id}", upstream=UP, weight=weight)


def route(id: int, *, priority: int = 0, canary: s.Canary | None = None, **match: object) -> s.Route:
    return s.Route(
        id=id,
        product_id=1,
        priority=priority,
        match=s.RouteMatch(**match),  # type: ignore[arg-type]
        targets=(target(1), target(2)),
        canary=canary,
    )


@pytest.mark.parametrize(
    ("prefix", "path", "fits"),
    [("", "/a", True), ("/", "/a", True), ("/v2", "/v2", True), ("/v2", "/v2/x", True), ("/v2", "/v20", False)],
)
def test_path_prefix_matches_on_segment_boundaries(prefix, path, fits):
    assert path_matches(prefix, path) is fits


def test_longest_prefix_wins_at_equal_priority_and_priority_wins_first():
    routes = (route(1, path_prefix="/"), route(2, path_prefix="/v2"), route(3, path_prefix="/v2/deep"))
    assert select_route(routes, path="/v2/deep/x").id == 3  # type: ignore[union-attr]
    assert select_route(routes, path="/v2/x").id == 2  # type: ignore[union-attr]
    assert select_route(routes, path="/other").id == 1  # type: ignore[union-attr]
    prioritized = (route(4, priority=10, path_prefix="/"), *routes)
    assert select_route(prioritized, path="/v2/deep/x").id == 4  # type: ignore[union-attr]


def test_host_and_headers_must_fit_and_no_route_gives_none():
    routes = (route(1, host="api.example.com", headers={"X-Tier": "gold"}),)
    gold = CIMultiDict({"x-tier": "gold"})
    assert select_route(routes, path="/", host="API.example.com:8443", headers=gold) is not None
    assert select_route(routes, path="/", host="other.example.com", headers=gold) is None
    assert select_route(routes, path="/", host="api.example.com", headers=CIMultiDict()) is None
    assert select_route((), path="/") is None


def test_weights_split_traffic_within_five_percent():
    weighted = s.Route(id=1, product_id=1, match=s.RouteMatch(), targets=(target(1, 75), target(2, 25), target(3, 0)))
    rng = random.Random(1234)
    counts = Counter(pick_target(weighted, app_id=None, rng=rng).id for _ in range(PICKS))
    assert abs(counts[1] / PICKS - 0.75) <= 0.05
    assert abs(counts[2] / PICKS - 0.25) <= 0.05
    assert counts[3] == 0


def test_canary_weight_mode_sends_its_percentage():
    canary = route(1, canary=s.Canary(target_id=2, mode="weight", weight=10))
    rng = random.Random(99)
    counts = Counter(pick_target(canary, app_id=None, rng=rng).id for _ in range(PICKS))
    assert abs(counts[2] / PICKS - 0.10) <= 0.05


def test_canary_header_and_apps_modes():
    rng = random.Random(7)
    by_header = route(1, canary=s.Canary(target_id=2, mode="header", header_name="X-Canary", header_value="on"))
    assert pick_target(by_header, app_id=None, headers=CIMultiDict({"x-canary": "on"}), rng=rng).id == 2
    assert all(pick_target(by_header, app_id=None, headers=CIMultiDict(), rng=rng).id == 1 for _ in range(100))
    by_app = route(1, canary=s.Canary(target_id=2, mode="apps", app_ids=(5,)))
    assert pick_target(by_app, app_id=5, rng=rng).id == 2
    assert all(pick_target(by_app, app_id=6, rng=rng).id == 1 for _ in range(100))
