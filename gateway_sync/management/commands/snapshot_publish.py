from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from gateway_sync.publish import snapshot_publish


class Command(BaseCommand):
    help = "Compile and publish a new snapshot version now, even if nothing changed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--reason", default="published by an operator")
        parser.add_argument("--if-changed", action="store_true", help="Only when the configuration changed.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = snapshot_publish(reason=options["reason"], force=not options["if_changed"])
        if result.record is None:
            self.stdout.write(f"Nothing to publish: {result.skipped}.")
        else:
            record = result.record
            self.stdout.write(
                self.style.SUCCESS(
                    f"Published snapshot {record.version} ({record.size_bytes:,} bytes, sha256 {record.sha256[:12]}…, "
                    f"generation {record.source_generation})."
                )
            )
