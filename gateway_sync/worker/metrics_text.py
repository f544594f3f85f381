"""The Prometheus text exposition format (version 0.0.4), written by hand for the worker's
metrics (metrics.py): escaping, counter and histogram families with a cap on their label
sets (folding the excess into ``product="other", route="other"``), and one-label metrics."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable, Iterable, Sequence

OTHER = "other"

Key = tuple[str, ...]


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(value)


def label_text(names: Iterable[str], values: Iterable[str]) -> str:
    """``name="value",...`` (no braces): the label part of a sample line."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in zip(names, values, strict=True))


class Family:
    """The series of one metric: label tuple -> value (counter) or buckets (histogram)."""

    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...], *, max_series: int, overflow: Callable[[str], None]
    ) -> None:
        self.name = name
        self.help_text = help_text
        self.labels = labels
        self.max_series = max_series
        self._overflow = overflow
        # Where "product" and "route" sit in a key: what a fold replaces with "other".
        self._foldable = tuple(i for i, label in enumerate(labels) if label in ("product", "route"))
        self.label_texts: dict[Key, str] = {}

    def admit(self, key: Key) -> Key:
        """The key to record ``key`` under: itself while the family has room, else folded.
        Registers the returned key's label text."""
        if len(self.label_texts) >= self.max_series and self._foldable:
            key = self.fold(key)
            self._overflow(self.name)
        if key not in self.label_texts:
            self.label_texts[key] = label_text(self.labels, key)
        return key

    def fold(self, key: Key) -> Key:
        return tuple(OTHER if i in self._foldable else value for i, value in enumerate(key))

    def merge_key(self, key: Key) -> tuple[Key, bool]:
        """For merging processes' states: the key to add ``key``'s numbers under (itself if
        present or while there is room, else folded), and whether it was folded here."""
        if key not in self.label_texts:
            if len(self.label_texts) >= self.max_series and self._foldable:
                folded = self.fold(key)
                if folded != key:
                    self.label_texts.setdefault(folded, label_text(self.labels, folded))
                    return folded, True
            self.label_texts[key] = label_text(self.labels, key)
        return key, False

    def header(self, kind: str) -> str:
        return f"# HELP {self.name} {escape_help(self.help_text)}\n# TYPE {self.name} {kind}\n"


class Counter(Family):
    def __init__(
        self, name: str, help_text: str, labels: tuple[str, ...], *, max_series: int, overflow: Callable[[str], None]
    ) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, overflow=overflow)
        self.values: dict[Key, float] = {}

    def inc(self, key: Key, amount: float = 1) -> None:
        try:
            self.values[key] += amount
        except KeyError:
            key = self.admit(key)
            self.values[key] = self.values.get(key, 0) + amount

    def merge(self, key: Key, amount: float) -> float:
        """Add another process's value; the amount folded into "other" here (else 0)."""
        key, folded = self.merge_key(key)
        self.values[key] = self.values.get(key, 0) + amount
        return amount if folded else 0

    def render(self, out: list[str]) -> None:
        out.append(self.header("counter"))
        texts = self.label_texts
        for key, value in self.values.items():
            labels = texts[key]
            braces = f"{{{labels}}}" if labels else ""
            out.append(f"{self.name}{braces} {format_value(value)}\n")


class Histogram(Family):
    def __init__(
        self,
        name: str,
        help_text: str,
        labels: tuple[str, ...],
        *,
        bounds: tuple[float, ...],
        max_series: int,
        overflow: Callable[[str], None],
    ) -> None:
        super().__init__(name, help_text, labels, max_series=max_series, overflow=overflow)
        self.bounds = bounds
        self._le = (*(format_value(bound) for bound in bounds), "+Inf")
        # Per key: one count per bucket (not cumulative; the last is +Inf), then the sum.
        self.buckets: dict[Key, list[float]] = {}

    def observe(self, key: Key, value: float) -> None:
        try:
            counts = self.buckets[key]
        except KeyError:
            key = self.admit(key)
            if key not in self.buckets:
                self.buckets[key] = [0.0] * (len(self.bounds) + 2)
            counts = self.buckets[key]
        # bisect_left: the first bound >= value, as "le" (less than or equal) requires.
        counts[bisect_left(self.bounds, value)] += 1
        counts[-1] += value

    def merge(self, key: Key, counts: Sequence[float]) -> float:
        """Add another process's bucket counts and sum; the observations folded into
        "other" here (else 0)."""
        key, folded = self.merge_key(key)
        mine = self.buckets.setdefault(key, [0.0] * (len(self.bounds) + 2))
        for index, count in enumerate(counts):
            mine[index] += count
        return sum(counts[:-1]) if folded else 0

    def render(self, out: list[str]) -> None:
        out.append(self.header("histogram"))
        name = self.name
        for key, counts in self.buckets.items():
            labels = self.label_texts[key]
            prefix = f"{labels}," if labels else ""
            total = 0
            for le, count in zip(self._le, counts, strict=False):
                total += int(count)
                out.append(f'{name}_bucket{{{prefix}le="{le}"}} {total}\n')
            braces = f"{{{labels}}}" if labels else ""
            out.append(f"{name}_sum{braces} {format_value(counts[-1])}\n")
            out.append(f"{name}_count{braces} {total}\n")


def simple_metric(
    out: list[str], name: str, help_text: str, kind: str, label: str, samples: Iterable[tuple[str, float]]
) -> None:
    """A metric with one label (or none, when ``label`` is "")."""
    out.append(f"# HELP {name} {escape_help(help_text)}\n# TYPE {name} {kind}\n")
    for value, number in samples:
        labels = f'{{{label}="{escape_label_value(value)}"}}' if label else ""
        out.append(f"{name}{labels} {format_value(number)}\n")
