"""A readable difference between two snapshots, for operators.

Each collection is compared by a stable identity (products by slug, keys by prefix, the
rest by id); the result lists what was added, removed and changed, field by field. Key
hashes never appear: a key is named by its prefix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from gateway_sync.contract.schema import Snapshot

COLLECTIONS: dict[str, str] = {
    "products": "slug",
    "plans": "id",
    "apps": "id",
    "keys": "prefix",
    "subscriptions": "id",
    "routes": "id",
    "guardrails": "id",
}
HIDDEN_FIELDS = {"hash", "secret_encrypted", "rest_to_mcp_config_encrypted"}


@dataclass
class Change:
    identity: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)


@dataclass
class CollectionDiff:
    name: str
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def _plain(value: Any) -> Any:
    data = msgspec.to_builtins(value)
    return _hide(data)


def _hide(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: ("(hidden)" if k in HIDDEN_FIELDS and v else _hide(v)) for k, v in data.items()}
    if isinstance(data, list):
        return [_hide(v) for v in data]
    return data


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        flat: dict[str, Any] = {}
        for key, value in data.items():
            flat.update(_flatten(value, f"{prefix}.{key}" if prefix else key))
        return flat
    return {prefix: data}


def diff_snapshots(old: Snapshot, new: Snapshot) -> list[CollectionDiff]:
    """What changed from ``old`` to ``new``, per collection (empty collections omitted)."""
    result = []
    for name, identity in COLLECTIONS.items():
        before = {str(getattr(item, identity)): _flatten(_plain(item)) for item in getattr(old, name)}
        after = {str(getattr(item, identity)): _flatten(_plain(item)) for item in getattr(new, name)}
        diff = CollectionDiff(name=name)
        diff.added = sorted(set(after) - set(before))
        diff.removed = sorted(set(before) - set(after))
        for key in sorted(set(before) & set(after)):
            fields = {
                path: (before[key].get(path), after[key].get(path))
                for path in sorted(set(before[key]) | set(after[key]))
                if before[key].get(path) != after[key].get(path)
            }
            if fields:
                diff.changed.append(Change(identity=key, fields=fields))
        if not diff.empty:
            result.append(diff)
    return result
