from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.services_demo import demo_credentials_write, demo_seed


class Command(BaseCommand):
    help = "Create the demo admin, provider and consumer (once) and print their logins."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--allow-production", action="store_true", help="Seed even with PLATFORM_ENV=production.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError("Refusing to create demo users in production; pass --allow-production to insist.")
        logins = demo_seed()
        if logins is None:
            self.stdout.write("Demo data already present.")
            if settings.EMBEDDED_MODE:
                self.stdout.write(f"Logins: {settings.VAR_DIR / 'demo-credentials.txt'}")
            return
        self.stdout.write(
            self.style.SUCCESS(f"Demo data created. Sign in at {settings.PORTAL_URL}/accounts/login/ as:")
        )
        for login in logins:
            self.stdout.write(f"  {login.role:<9} {login.email:<22} {login.password}")
        if settings.EMBEDDED_MODE:
            path = demo_credentials_write(logins)
            self.stdout.write(f"(also written to {path}; these passwords are not shown again)")
        else:
            self.stdout.write("(these passwords are not shown again)")
