"""msgspec Structs versus dataclasses for the snapshot contract, measured.

The same 100,000 keys (the bulk of a large snapshot), encoded to canonical JSON and
decoded back with validation:

- msgspec: ``msgspec.json.Encoder(order="sorted")`` and a typed ``Decoder``, which checks
  types and required fields while decoding;
- dataclasses: ``json.dumps(asdict(...), sort_keys=True)`` and ``json.loads`` followed by
  a hand-written check of every field (what a worker would need to be as strict).

Results go to bench/results/contract_codecs.json. Run: ``.venv/bin/python bench/contract_codecs.py``.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import msgspec

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway_sync.contract.schema import Key  # noqa: E402

N = 100_000


@dataclasses.dataclass(frozen=True, kw_only=True)
class KeyDC:
    hash: str
    prefix: str
    app_id: int
    expires_at: float | None = None
    product_ids: tuple[int, ...] = ()


def _check_dc(item: dict[str, object]) -> KeyDC:
    if set(item) - {"hash", "prefix", "app_id", "expires_at", "product_ids"}:
        raise ValueError("unknown field")
    if not isinstance(item["hash"], str) or not isinstance(item["prefix"], str):
        raise ValueError("bad string")
    if not isinstance(item["app_id"], int) or isinstance(item["app_id"], bool):
        raise ValueError("bad app_id")
    expires = item.get("expires_at")
    if expires is not None and not isinstance(expires, (int, float)):
        raise ValueError("bad expires_at")
    products = item.get("product_ids", [])
    if not isinstance(products, list) or not all(isinstance(p, int) for p in products):
        raise ValueError("bad product_ids")
    return KeyDC(
        hash=item["hash"],
        prefix=item["prefix"],
        app_id=item["app_id"],
        expires_at=expires,  # type: ignore[arg-type]
        product_ids=tuple(products),
    )


def _timed(function, rounds: int = 5) -> float:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        function()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main() -> None:
    structs = [Key(hash=f"{i:064x}", prefix=f"sk-{i:08d}", app_id=i % 97, product_ids=(i % 13,)) for i in range(N)]
    classes = [KeyDC(hash=k.hash, prefix=k.prefix, app_id=k.app_id, product_ids=k.product_ids) for k in structs]
    encoder = msgspec.json.Encoder(order="sorted")
    decoder = msgspec.json.Decoder(list[Key])
    ms_payload = encoder.encode(structs)
    dc_payload = json.dumps([dataclasses.asdict(c) for c in classes], sort_keys=True, separators=(",", ":")).encode()
    result = {
        "benchmark": "contract_codecs",
        "items": N,
        "msgspec": {
            "encode_s": round(_timed(lambda: encoder.encode(structs)), 4),
            "decode_validate_s": round(_timed(lambda: decoder.decode(ms_payload)), 4),
            "bytes": len(ms_payload),
        },
        "dataclasses_json": {
            "encode_s": round(
                _timed(
                    lambda: json.dumps(
                        [dataclasses.asdict(c) for c in classes], sort_keys=True, separators=(",", ":")
                    ).encode()
                ),
                4,
            ),
            "decode_validate_s": round(_timed(lambda: [_check_dc(i) for i in json.loads(dc_payload)]), 4),
            "bytes": len(dc_payload),
        },
    }
    result["speedup"] = {
        "encode": round(result["dataclasses_json"]["encode_s"] / result["msgspec"]["encode_s"], 1),  # type: ignore[index]
        "decode_validate": round(
            result["dataclasses_json"]["decode_validate_s"] / result["msgspec"]["decode_validate_s"],
            1,  # type: ignore[index]
        ),
    }
    output = ROOT / "bench" / "results" / "contract_codecs.json"
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201


if __name__ == "__main__":
    main()
