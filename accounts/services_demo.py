"""The demo seed: a demo admin, a provider organization and a consumer organization.

Run once on the first start of ``make run``; later runs find the demo admin and do nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import transaction

from accounts import services
from accounts.models import User
from accounts.tokens import random_string

DEMO_ADMIN_EMAIL = "admin@demo.local"
DEMO_PROVIDER_EMAIL = "provider@demo.local"
DEMO_CONSUMER_EMAIL = "consumer@demo.local"


@dataclass(frozen=True)
class DemoLogin:
    role: str
    email: str
    password: str


def _demo_user(email: str, name: str, password: str, *, staff: bool = False) -> User:
    user = User.objects.create_user(email=email, password=password, name=name, is_staff=staff, is_superuser=staff)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=True)
    return user


@transaction.atomic
def demo_seed() -> list[DemoLogin] | None:
    """Create the demo users and organizations. Returns their logins, or None when the
    demo data already exists."""
    if User.objects.filter(email=DEMO_ADMIN_EMAIL).exists():
        return None
    logins = [
        DemoLogin("admin", DEMO_ADMIN_EMAIL, random_string(16)),
        DemoLogin("provider", DEMO_PROVIDER_EMAIL, random_string(16)),
        DemoLogin("consumer", DEMO_CONSUMER_EMAIL, random_string(16)),
    ]
    admin = _demo_user(logins[0].email, "Demo Admin", logins[0].password, staff=True)
    provider = _demo_user(logins[1].email, "Demo Provider", logins[1].password)
    consumer = _demo_user(logins[2].email, "Demo Consumer", logins[2].password)
    services.audit_record(actor=None, action="demo.seed", target=admin)
    services.organization_create(actor=provider, name="Demo Provider", slug="demo-provider")
    services.organization_create(actor=consumer, name="Demo Consumer", slug="demo-consumer")
    return logins


def demo_credentials_write(logins: list[DemoLogin], path: Path | None = None) -> Path:
    """Write the logins to var/demo-credentials.txt, readable by the owner only."""
    path = path or settings.VAR_DIR / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# Demo logins for {settings.PORTAL_URL}/accounts/login/ (embedded mode only)"]
    lines += [f"{login.role:<9} {login.email:<22} {login.password}" for login in logins]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def demo_credentials_append(line: str, path: Path | None = None) -> Path:
    """Add a line (the demo app's key) to var/demo-credentials.txt."""
    path = path or settings.VAR_DIR / "demo-credentials.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(fd, "a", encoding="utf-8") as handle:
        handle.write(line.rstrip("\n") + "\n")
    return path
