"""Which route, and which target, serves a request. Pure functions: no I/O, and the
randomness comes from the caller (a seeded ``random.Random`` in tests).

Route choice: among the product's routes whose ``match`` fits (path prefix on segment
boundaries, host, every listed header), the highest ``priority`` wins; at equal priority
the longest ``path_prefix``, then the lowest route id. No route fits: the caller uses the
product's own upstream.

Target choice: ``random.choices`` by ``weight`` among the route's targets, except the
canary's, which gets: ``weight`` mode, ``canary.weight`` percent of the traffic; ``header``
mode, the requests carrying ``header_name: header_value``; ``apps`` mode, the listed apps.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence

from gateway_sync.contract.schema import Route, RouteMatch, Target


def path_matches(prefix: str, path: str) -> bool:
    """``/v2`` fits ``/v2`` and ``/v2/x``, not ``/v20``; an empty prefix (or ``/``) fits all."""
    stem = prefix.rstrip("/")
    if not stem:
        return True
    return path == stem or path.startswith(stem + "/")


def _host_only(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        return host.split("]", 1)[0] + "]"
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def route_fits(match: RouteMatch, *, path: str, host: str, headers: Mapping[str, str]) -> bool:
    if match.path_prefix and not path_matches(match.path_prefix, path):
        return False
    if match.host and _host_only(match.host) != _host_only(host):
        return False
    return all(headers.get(name) == value for name, value in match.headers.items())


def select_route(
    routes: Sequence[Route], *, path: str, host: str = "", headers: Mapping[str, str] | None = None
) -> Route | None:
    """The route for this request (``routes`` as the index holds them), or None.
    ``headers`` should be case-insensitive (a request's CIMultiDict)."""
    found = headers if headers is not None else {}
    best: Route | None = None
    for route in routes:
        if not route_fits(route.match, path=path, host=host, headers=found):
            continue
        if best is None or (route.priority, len(route.match.path_prefix.rstrip("/")), -route.id) > (
            best.priority,
            len(best.match.path_prefix.rstrip("/")),
            -best.id,
        ):
            best = route
    return best


def _by_weight(targets: Sequence[Target], rng: random.Random) -> Target:
    weights = [max(target.weight, 0) for target in targets]
    if sum(weights) <= 0:
        return rng.choice(list(targets))
    return rng.choices(list(targets), weights=weights, k=1)[0]


def pick_target(
    route: Route, *, app_id: int | None, headers: Mapping[str, str] | None = None, rng: random.Random
) -> Target:
    """The target to send this request to (``route.targets`` is never empty)."""
    canary = route.canary
    canary_target = None
    if canary is not None:
        canary_target = next((t for t in route.targets if t.id == canary.target_id), None)
    if canary is None or canary_target is None:
        return _by_weight(route.targets, rng)
    others = [target for target in route.targets if target.id != canary_target.id]
    if not others:
        return canary_target
    if canary.mode == "weight":
        chosen = rng.random() * 100 < canary.weight
    elif canary.mode == "header":
        found = headers if headers is not None else {}
        chosen = bool(canary.header_name) and found.get(canary.header_name) == canary.header_value
    else:  # "apps"
        chosen = app_id is not None and app_id in canary.app_ids
    return canary_target if chosen else _by_weight(others, rng)


def pick_available_target(
    route: Route,
    *,
    app_id: int | None,
    headers: Mapping[str, str] | None = None,
    rng: random.Random,
    cooling: Callable[[int], bool],
) -> Target:
    """``pick_target``, but a cooling-down choice is replaced by a weighted pick among the
    route's targets that are not cooling down; when all of them are, the original choice."""
    chosen = pick_target(route, app_id=app_id, headers=headers, rng=rng)
    if not cooling(chosen.id):
        return chosen
    warm = [target for target in route.targets if not cooling(target.id)]
    return _by_weight(warm, rng) if warm else chosen


def fallback_targets(route: Route, chosen: Target, *, cooling: Callable[[int], bool]) -> list[Target]:
    """``route.fallback_target_ids`` as targets, in order, each once: not the chosen one,
    not an unknown id, not one cooling down."""
    by_id = {target.id: target for target in route.targets}
    found: list[Target] = []
    seen = {chosen.id}
    for target_id in route.fallback_target_ids:
        target = by_id.get(target_id)
        if target is None or target_id in seen or cooling(target_id):
            continue
        seen.add(target_id)
        found.append(target)
    return found
