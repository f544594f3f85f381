"""The snapshot contract: canonical encoding, checksums, strict validated decoding."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gateway_sync.contract import SnapshotError, decode_snapshot, encode_snapshot, sha256_hex
from gateway_sync.contract import schema as s

ROOT = Path(__file__).resolve().parents[2]


def snapshot(**overrides: object) -> s.Snapshot:
    fields: dict[str, object] = {
        "version": 7,
        "created_at": 1_700_000_000.0,
        "source_generation": 42,
        "products": (
            s.Product(
                id=1,
                slug="echo",
                kind="rest_api",
                organization_id=1,
                public=True,
                version_id=10,
                version="1.0.0",
                upstream=s.Upstream(url="http://127.0.0.1:9101"),
            ),
        ),
        "plans": (s.Plan(id=5, product_id=1, name="Free", requests_per_minute=100),),
        "apps": (s.App(id=3, organization_id=2, name="App"),),
        "keys": (s.Key(hash="a" * 64, prefix="sk-abcdefgh", app_id=3),),
        "subscriptions": (s.Subscription(id=9, app_id=3, product_id=1, plan_id=5),),
    }
    fields.update(overrides)
    return s.Snapshot(**fields)  # type: ignore[arg-type]


def test_a_snapshot_survives_the_round_trip():
    original = snapshot()
    payload = encode_snapshot(original)
    assert decode_snapshot(payload, expected_sha256=sha256_hex(payload)) == original


def test_the_encoding_is_canonical():
    payload = encode_snapshot(snapshot())
    assert payload == encode_snapshot(snapshot())
    document = json.loads(payload)
    assert list(document) == sorted(document), "keys are sorted"
    assert b" " not in payload.replace(b"Free", b"").replace(b"App", b"")


def test_a_payload_that_does_not_match_its_checksum_is_refused():
    payload = encode_snapshot(snapshot())
    with pytest.raises(SnapshotError, match="checksum mismatch"):
        decode_snapshot(payload.replace(b'"Free"', b'"Paid"'), expected_sha256=sha256_hex(payload))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda d: d.update(keys=[{"hash": "b" * 64, "prefix": "sk-x", "app_id": 99}]),
            "key sk-x names unknown app 99",
        ),
        (lambda d: d["subscriptions"][0].update(plan_id=77), "subscription 9 names plan 77"),
        (lambda d: d["plans"][0].update(product_id=5), "plan 5 names unknown product 5"),
        (lambda d: d.update(products=d["products"] * 2), "duplicate product id 1"),
        (lambda d: d["products"][0].update(kind="ftp"), "schema"),
        (lambda d: d["products"][0].update(surprise=True), "schema"),
        (lambda d: d.pop("version"), "schema"),
        (lambda d: d.update(schema_version=99), "schema version 99"),
    ],
)
def test_an_inconsistent_or_malformed_snapshot_is_refused(mutate, message):
    document = json.loads(encode_snapshot(snapshot()))
    mutate(document)
    with pytest.raises(SnapshotError, match=message):
        decode_snapshot(json.dumps(document).encode())


def test_garbage_is_refused():
    with pytest.raises(SnapshotError, match="not valid JSON"):
        decode_snapshot(b"\x00\x01 not json")


def test_routes_are_checked_against_their_targets():
    route = s.Route(
        id=1,
        product_id=1,
        match=s.RouteMatch(path_prefix="/"),
        targets=(s.Target(id=1, name="a", upstream=s.Upstream(url="http://a")),),
        fallback_target_ids=(2,),
        canary=s.Canary(target_id=3, mode="weight", weight=10),
        guardrail_ids=(4,),
    )
    with pytest.raises(SnapshotError) as error:
        decode_snapshot(encode_snapshot(snapshot(routes=(route,))))
    assert "falls back to unknown target 2" in str(error.value)
    assert "canary names unknown target 3" in str(error.value)
    assert "unknown guardrail 4" in str(error.value)


def test_a_snapshot_from_before_cut_stream_on_budget_decodes_with_it_off():
    route = s.Route(
        id=1,
        product_id=1,
        match=s.RouteMatch(path_prefix="/"),
        targets=(s.Target(id=1, name="a", upstream=s.Upstream(url="http://a")),),
    )
    payload = encode_snapshot(snapshot(routes=(route,)))
    assert b"cut_stream_on_budget" not in payload
    [decoded] = decode_snapshot(payload).routes
    assert decoded.cut_stream_on_budget is False
    cutting = s.Route(**{**{f: getattr(route, f) for f in route.__struct_fields__}, "cut_stream_on_budget": True})
    [decoded] = decode_snapshot(encode_snapshot(snapshot(routes=(cutting,)))).routes
    assert decoded.cut_stream_on_budget is True


def test_the_contract_imports_no_django():
    code = "import sys, gateway_sync.contract; print('django' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
