from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from consumers.usage import MAX_EVENTS_PER_RUN, usage_drain


class Command(BaseCommand):
    help = (
        "Ingest the gateway's usage events into the database: from the Redis stream with REDIS_URL, "
        "else from the spool folder. In embedded mode (no Celery beat) `make run` runs it with --follow."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--follow", action="store_true", help="Keep ingesting until interrupted.")
        parser.add_argument("--interval", type=float, default=2.0, help="Seconds between runs with --follow.")

    def handle(self, *args: Any, **options: Any) -> None:
        interval = options["interval"]
        if not 0.05 <= interval <= 3600:
            raise CommandError(f"--interval {interval}: use a number of seconds between 0.05 and 3600")
        while True:
            result = usage_drain()
            if result.total or not options["follow"]:
                self.stdout.write(
                    f"Usage events: {result.inserted} inserted, {result.duplicates} duplicates, "
                    f"{result.invalid} invalid."
                )
            if not options["follow"]:
                return
            # A batch that filled the run means more are waiting: go on at once.
            if result.total < MAX_EVENTS_PER_RUN:
                try:
                    time.sleep(interval)
                except KeyboardInterrupt:
                    return
            close_old_connections()
