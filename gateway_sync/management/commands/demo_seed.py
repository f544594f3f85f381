from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization, User
from accounts.services_demo import (
    DEMO_ADMIN_EMAIL,
    DEMO_CONSUMER_EMAIL,
    DEMO_PROVIDER_EMAIL,
    demo_credentials_append,
    demo_credentials_write,
    demo_seed,
)
from consumers.services_demo import DEMO_APP_NAME, demo_consumer_seed
from marketplace.services_demo import demo_products_seed


class Command(BaseCommand):
    help = (
        "Create the demo admin, provider and consumer (once) and print their logins; "
        "publish the demo products that are missing."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--allow-production", action="store_true", help="Seed even with PLATFORM_ENV=production.")
        parser.add_argument("--skip-products", action="store_true", help="Only the demo users and organizations.")

    def handle(self, *args: Any, **options: Any) -> None:
        if settings.PRODUCTION and not options["allow_production"]:
            raise CommandError("Refusing to create demo users in production; pass --allow-production to insist.")
        logins = demo_seed()
        if logins is None:
            self.stdout.write("Demo users already present.")
            if settings.EMBEDDED_MODE:
                self.stdout.write(f"Logins: {settings.VAR_DIR / 'demo-credentials.txt'}")
        else:
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
        if not options["skip_products"]:
            created = demo_products_seed(
                admin=User.objects.get(email=DEMO_ADMIN_EMAIL),
                provider=User.objects.get(email=DEMO_PROVIDER_EMAIL),
                organization=Organization.objects.get(slug="demo-provider"),
            )
            if created:
                self.stdout.write(self.style.SUCCESS(f"Published demo products: {', '.join(created)}"))
            key = demo_consumer_seed(
                consumer=User.objects.get(email=DEMO_CONSUMER_EMAIL),
                organization=Organization.objects.get(slug="demo-consumer"),
            )
            if key is not None:
                self.stdout.write(
                    self.style.SUCCESS(f"{DEMO_APP_NAME} subscribes to the demo products; its gateway key:")
                )
                self.stdout.write(f"  {key}")
                if settings.EMBEDDED_MODE:
                    path = demo_credentials_append(f"api-key   demo-app               {key}")
                    self.stdout.write(f"(also written to {path}; it is not shown again)")
