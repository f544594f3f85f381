"""The usage event's wire format: JSON lines, checked on decoding, pure Python."""

from __future__ import annotations

import subprocess
import sys

import msgspec
import pytest

from gateway_sync.contract.usage import UsageEventError, decode_event, encode_event, encode_events
from tests.consumers.usage.conftest import make_event


def test_events_round_trip_through_json_lines() -> None:
    events = [make_event(guardrail_actions=("redact:pii_email",)), make_event(app_id=None, prompt_tokens=None)]
    lines = encode_events(events).splitlines(keepends=True)
    assert len(lines) == 2
    assert all(line.endswith(b"\n") for line in lines)
    assert [decode_event(line) for line in lines] == events


@pytest.mark.parametrize(
    "change",
    [
        {"event_id": "not-a-uuid"},
        {"status": 99},
        {"latency_ms": -1.0},
        {"protocol": "smtp"},
        {"worker_id": "a\x00b"},
        {"path": "/" * 513},
        {"prompt_tokens": 2**31},
        {"unknown_field": 1},
    ],
)
def test_an_event_outside_the_contract_is_refused(change: dict[str, object]) -> None:
    raw = msgspec.json.decode(encode_event(make_event()))
    raw.update(change)
    with pytest.raises(UsageEventError):
        decode_event(msgspec.json.encode(raw))


def test_malformed_json_is_refused() -> None:
    with pytest.raises(UsageEventError):
        decode_event(b'{"event_id": ')


def test_the_contract_imports_no_django() -> None:
    code = "import sys, gateway_sync.contract.usage; assert 'django' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
