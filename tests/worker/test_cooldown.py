"""cooldown.py (with an injected clock) and routing's cooldown-aware target choice."""

from __future__ import annotations

import random

from gateway_sync.contract import schema as s
from gateway_sync.worker.cooldown import CooldownTracker
from gateway_sync.worker.routing import fallback_targets, pick_available_target

POLICY = s.Cooldown(failures=3, window_s=10, cooldown_s=30)
UP = s.Upstream(url="http://127.0.0.1:1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cools_down_after_n_failures_within_the_window_and_comes_back():
    clock = Clock()
    tracker = CooldownTracker(clock)
    for _ in range(2):
        tracker.record_failure(1, POLICY)
    assert not tracker.cooling(1)
    tracker.record_failure(1, POLICY)
    assert tracker.cooling(1)
    assert not tracker.cooling(2)
    clock.now += 29.9
    assert tracker.cooling(1)
    clock.now += 0.1
    assert not tracker.cooling(1)
    # The failure count started over with the cooldown.
    tracker.record_failure(1, POLICY)
    assert not tracker.cooling(1)


def test_failures_outside_the_window_do_not_add_up():
    clock = Clock()
    tracker = CooldownTracker(clock)
    for _ in range(5):
        tracker.record_failure(1, POLICY)
        clock.now += 6  # at most two failures in any 10 s window
        if tracker.cooling(1):
            break
    else:
        return
    raise AssertionError("cooled down with failures spread beyond the window")


def test_zero_failures_disables_the_cooldown():
    tracker = CooldownTracker(Clock())
    for _ in range(10):
        tracker.record_failure(1, s.Cooldown(failures=0))
    assert not tracker.cooling(1)


def _route(fallbacks: tuple[int, ...] = ()) -> s.Route:
    return s.Route(
        id=1,
        product_id=1,
        match=s.RouteMatch(),
        targets=(
            s.Target(id=1, name="a", upstream=UP, weight=100),
            s.Target(id=2, name="b", upstream=UP, weight=0),
            s.Target(id=3, name="c", upstream=UP, weight=0),
        ),
        fallback_target_ids=fallbacks,
    )


def test_a_cooling_choice_is_replaced_unless_every_target_cools():
    rng = random.Random(1)
    route = _route()
    assert pick_available_target(route, app_id=None, rng=rng, cooling=lambda _: False).id == 1
    assert pick_available_target(route, app_id=None, rng=rng, cooling=lambda t: t == 1).id in {2, 3}
    assert pick_available_target(route, app_id=None, rng=rng, cooling=lambda t: t != 3).id == 3
    assert pick_available_target(route, app_id=None, rng=rng, cooling=lambda _: True).id == 1


def test_fallbacks_in_order_once_without_the_chosen_unknown_or_cooling_ones():
    route = _route(fallbacks=(3, 1, 99, 2, 3))
    chosen = route.targets[0]
    assert [t.id for t in fallback_targets(route, chosen, cooling=lambda _: False)] == [3, 2]
    assert [t.id for t in fallback_targets(route, chosen, cooling=lambda t: t == 3)] == [2]
