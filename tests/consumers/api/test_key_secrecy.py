"""A key's plaintext lives in exactly one place: the response that created it.

Keys are created, used and rotated through the API, while a careless client logs
everything it sends and receives (keys included) through the ``logging`` module, with
the project's logging configuration installed. Afterwards no plaintext key, nor its
secret part after the prefix, is in a dump of the database, in any column of any table,
in a published gateway snapshot, in an email, or in the captured log output; and no
record from the platform's own code ever mentioned one."""

from __future__ import annotations

import logging
import traceback
from io import StringIO
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.db import connection
from django.test import Client

from accounts.tokens import keyed_hash
from config.logging import RedactSecretsFilter
from consumers import services
from consumers.models import ApiKey
from gateway_sync.models import SnapshotRecord
from gateway_sync.publish import snapshot_publish
from tests.consumers.api.urls import app_url, apps_url, key_url
from tests.consumers.services.scene import Stage
from tests.marketplace.api.helpers import Api, ok

# Stands in for careless code (a client script, a proxy, a debugging session).
careless = logging.getLogger("tests.consumers.careless_client")
DISPLAY_PREFIX = 11  # "sk-" and 8 characters: what may be shown and stored


class RawRecords(logging.Handler):
    """Keeps the text of every record as it was logged, before any filter rewrites it."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.texts: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        self.texts.append((record.name, text))


def gateway_authenticate(presented: str) -> ApiKey | None:
    """What the gateway will do with a key: find it by its keyed hash, and admit it
    while it is usable."""
    key = ApiKey.objects.select_related("app").filter(key_hash=keyed_hash(presented)).first()
    return key if key is not None and key.is_usable else None


def logged_call(api: Api, method: str, path: str, key: str, data: Any = None) -> Any:
    """Call the API the way a careless client does: logging the key, the request and the
    answer (whose body may hold a new key)."""
    careless.info("%s %s with X-Api-Key: %s", method.upper(), path, key)
    if method == "get":
        response = api.client.get(path, {"api_key": key}, HTTP_X_API_KEY=key)
    else:
        response = api.client.post(path, data or {}, content_type="application/json", HTTP_X_API_KEY=key)
    careless.info("answered %s: %s", response.status_code, response.content.decode())
    return response


def use(api: Api, stage: Stage, key: str) -> None:
    """Authenticate the key as the gateway will, then go through the motions of a
    client that leaks it everywhere: the portal API, an Authorization header the portal
    refuses, and an exception whose message holds the key."""
    found = gateway_authenticate(key)
    assert found is not None
    assert found.app == stage.app
    ok(logged_call(api, "get", app_url(stage.app.pk, "keys/"), key))
    refused = Client().get(apps_url(), HTTP_AUTHORIZATION=f"Bearer {key}")
    assert refused.status_code == 401
    assert key[DISPLAY_PREFIX:] not in refused.content.decode()
    try:
        raise ConnectionError(f"upstream refused the key {key}")
    except ConnectionError:
        careless.exception("call with Authorization: Bearer %s failed", key)
    careless.error("giving up on %s", key)


def database_dump() -> str:
    out = StringIO()
    call_command("dumpdata", stdout=out)
    return out.getvalue()


def every_column_of_every_table() -> str:
    """Every value of every row of every table, as text (binary columns decoded)."""
    parts: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            # Table names come from the database's own catalogue, not from input.
            cursor.execute(f"SELECT * FROM {connection.ops.quote_name(table)}")  # noqa: S608
            for row in cursor.fetchall():
                for value in row:
                    if isinstance(value, memoryview | bytes):
                        parts.append(bytes(value).decode("utf-8", "replace"))
                    elif value is not None:
                        parts.append(str(value))
    return "\n".join(parts)


def snapshot_files() -> str:
    directory = Path(settings.SNAPSHOT_DIR)
    files = [p for p in directory.rglob("*") if p.is_file()] if directory.exists() else []
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in files)


def project_console_handler() -> logging.StreamHandler[Any]:
    """The handler settings.LOGGING installs on the root logger, with its filter."""
    handlers = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler) and any(isinstance(f, RedactSecretsFilter) for f in h.filters)
    ]
    assert len(handlers) == 1, logging.getLogger().handlers
    return handlers[0]


def test_creates_uses_and_rotates_keys_and_then_finds_no_plaintext_key_anywhere_in_a_dump_of_the_database_or_in_the_captured_logs(  # noqa: E501
    stage: Stage, member_api: Api, caplog: Any, django_capture_on_commit_callbacks: Any
) -> None:
    caplog.set_level(logging.INFO)
    console = project_console_handler()
    captured = StringIO()
    raw = RawRecords()
    root = logging.getLogger()
    root.handlers.insert(0, raw)  # before the project's handler, whose filter rewrites records
    previous_stream = console.setStream(captured)
    plaintexts: list[str] = []
    try:
        with django_capture_on_commit_callbacks(execute=True):
            ok(member_api.post(app_url(stage.app.pk, "subscriptions/"), {"product": "weather"}), 201)

            # Create two keys (one limited to weather) and use them.
            created = [
                logged_call(member_api, "post", app_url(stage.app.pk, "keys/"), "-", {"name": "web"}),
                logged_call(
                    member_api, "post", app_url(stage.app.pk, "keys/"), "-", {"name": "batch", "products": ["weather"]}
                ),
            ]
            first, second = (ok(response, 201) for response in created)
            plaintexts += [first["key"], second["key"]]
            for key in plaintexts:
                use(member_api, stage, key)

            # Rotate both: the first with an hour's overlap, the second with none.
            rotated_first = ok(
                logged_call(
                    member_api,
                    "post",
                    key_url(stage.app.pk, first["id"], "rotate/"),
                    first["key"],
                    {"overlap_seconds": 3600},
                ),
                201,
            )
            rotated_second = ok(
                logged_call(
                    member_api,
                    "post",
                    key_url(stage.app.pk, second["id"], "rotate/"),
                    second["key"],
                    {"overlap_seconds": 0},
                ),
                201,
            )
            plaintexts += [rotated_first["key"], rotated_second["key"]]
            use(member_api, stage, rotated_first["key"])
            use(member_api, stage, rotated_second["key"])
            use(member_api, stage, first["key"])  # still inside its overlap
            assert gateway_authenticate(second["key"]) is None  # no overlap: gone at once

            # Revoke one, expire what is due, and publish what the gateway would get.
            ok(logged_call(member_api, "post", key_url(stage.app.pk, rotated_second["id"], "revoke/"), "-"))
            assert gateway_authenticate(rotated_second["key"]) is None
            services.api_keys_expire()
        snapshot_publish(reason="key secrecy test", force=True)
    finally:
        console.setStream(previous_stream)
        root.removeHandler(raw)

    assert len(set(plaintexts)) == 4
    secrets = {key: key[DISPLAY_PREFIX:] for key in plaintexts}
    dump, columns = database_dump(), every_column_of_every_table()
    payload = bytes(SnapshotRecord.objects.order_by("-version").values_list("payload", flat=True)[0]).decode()
    places = {
        "dumpdata": dump,
        "raw columns": columns,
        "snapshot files": snapshot_files(),
        "emails": "\n".join(f"{m.subject}\n{m.body}" for m in mail.outbox),
        "captured log output": captured.getvalue(),
    }

    # The searches could have found them: prefixes and keyed hashes are there.
    for key in plaintexts:
        assert key[:DISPLAY_PREFIX] in dump
        assert keyed_hash(key) in dump
        assert keyed_hash(key) in columns
    assert keyed_hash(rotated_first["key"]) in payload
    assert keyed_hash(first["key"]) in payload  # still inside its overlap
    assert keyed_hash(rotated_second["key"]) not in payload  # revoked
    # And the careless client really did log every key, raw, before the filter.
    raw_careless = "\n".join(text for name, text in raw.texts if name == careless.name)
    assert all(key in raw_careless for key in plaintexts)
    assert all(key in caplog.text or f"{key[:DISPLAY_PREFIX]}…[redacted]" in caplog.text for key in plaintexts)
    assert "…[redacted]" in captured.getvalue()
    assert "upstream refused the key sk-" in captured.getvalue()

    for place, text in places.items():
        for key, secret in secrets.items():
            assert key not in text, f"a plaintext key in the {place}"
            assert secret not in text, f"the secret part of a key in the {place}"
    # Nothing the platform logged (Django and Celery included) ever held a key.
    ours = [(name, text) for name, text in raw.texts if not name.startswith("tests.")]
    assert ours, "the platform logged nothing: the check below would prove nothing"
    for name, text in ours:
        assert not any(secret in text for secret in secrets.values()), f"{name} logged a key: {text}"
    for record in caplog.records:
        if not record.name.startswith("tests."):
            assert "[redacted]" not in record.getMessage(), record.name
            assert not any(secret in record.getMessage() for secret in secrets.values()), record.name
