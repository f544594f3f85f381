"""The vendored server.json schema: where it comes from, and that the importer validates
with the very same file the tests check responses against."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft7Validator

import marketplace.registry
from marketplace.registry import schema

HERE = Path(__file__).parent
SCHEMA_ID = "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json"


def test_the_vendored_schema_is_the_official_2025_12_11_server_schema() -> None:
    text = (HERE / "server.schema.json").read_text(encoding="utf-8")
    document = json.loads(text)

    assert len(text) == 22_193  # as stored in modelcontextprotocol/registry
    assert document["$id"] == SCHEMA_ID
    assert document["$schema"] == "http://json-schema.org/draft-07/schema#"
    Draft7Validator.check_schema(document)
    source = (HERE / "SCHEMA_SOURCE.md").read_text(encoding="utf-8")
    assert SCHEMA_ID in source
    assert "internal/validators/schemas/2025-12-11.json" in source


def test_the_importer_uses_a_byte_identical_copy() -> None:
    package_copy = Path(marketplace.registry.__file__).with_name("server.schema.json")
    assert package_copy.read_bytes() == (HERE / "server.schema.json").read_bytes()
    assert schema.server_schema()["$id"] == SCHEMA_ID == schema.SCHEMA_URL


def test_schema_errors_name_the_path_and_the_rule() -> None:
    errors = schema.server_errors(
        {
            "name": "no-slash",
            "description": "x" * 101,
            "version": "1.0.0",
            "websiteUrl": "not a url",
            "remotes": [{"type": "websocket", "url": "wss://x"}, {"type": "sse"}, {"type": "sse", "url": "ftp://x"}],
        },
        "servers[3].server",
    )

    assert errors == [
        "servers[3].server.description: is 101 characters long; at most 100 are allowed",
        'servers[3].server.name: "no-slash" does not match ^[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+$',
        'servers[3].server.remotes[0].type: "websocket" is not one of sse, streamable-http',
        "servers[3].server.remotes[1]: 'url' is required",
        'servers[3].server.remotes[2].url: "ftp://x" does not match ^https?://[^\\s]+$',
        'servers[3].server.websiteUrl: "not a url" is not a valid uri',
    ]
