"""Unique ids for requests and usage events, cheap enough for the request path.

32 lowercase hex digits (the shape of ``uuid4().hex``, which the usage contract expects):
16 random per process, then a 64-bit counter. Unique across processes and restarts with
the probability of two 64-bit random prefixes differing; about 0.1 µs instead of the
1-2 µs of ``uuid4()``, which reads ``os.urandom`` every time.
"""

from __future__ import annotations

import itertools
import os

_PREFIX = os.urandom(8).hex()
_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_id() -> str:
    return f"{_PREFIX}{next(_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def _reseed_after_fork() -> None:
    # A forked child must not repeat its parent's ids.
    global _PREFIX, _counter
    _PREFIX = os.urandom(8).hex()
    _counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_reseed_after_fork)
