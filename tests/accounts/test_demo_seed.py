from __future__ import annotations

import stat
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import Client

from accounts.models import Membership, Role, User

pytestmark = pytest.mark.django_db


def test_demo_seed_creates_three_logins_that_work_and_writes_them_once(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_MODE = True
    out = StringIO()
    call_command("demo_seed", stdout=out)

    credentials = (tmp_path / "demo-credentials.txt").read_text().splitlines()[1:]
    assert stat.S_IMODE((tmp_path / "demo-credentials.txt").stat().st_mode) == 0o600
    logins = {line.split()[0]: (line.split()[1], line.split()[2]) for line in credentials}
    assert set(logins) == {"admin", "provider", "consumer", "api-key"}
    key = logins.pop("api-key")[1]
    assert key.startswith("sk-")
    assert key in out.getvalue()
    for email, password in logins.values():
        assert password in out.getvalue(), "printed once on the console too"
        client = Client()
        response = client.post("/accounts/login/", {"login": email, "password": password}, follow=True)
        assert response.context["user"].email == email

    assert User.objects.get(email=logins["admin"][0]).is_staff
    assert Membership.objects.get(user__email=logins["provider"][0]).organization.slug == "demo-provider"
    assert (
        Membership.objects.get(user__email=logins["consumer"][0], role=Role.OWNER).organization.slug == "demo-consumer"
    )


def test_demo_seed_runs_once(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_MODE = True
    call_command("demo_seed", stdout=StringIO())
    first = (tmp_path / "demo-credentials.txt").read_text()
    out = StringIO()
    call_command("demo_seed", stdout=out)
    assert "already present" in out.getvalue()
    assert (tmp_path / "demo-credentials.txt").read_text() == first
    assert User.objects.count() == 3


def test_demo_credentials_are_not_written_outside_embedded_mode(tmp_path, settings):
    settings.VAR_DIR = tmp_path
    settings.EMBEDDED_MODE = False
    call_command("demo_seed", stdout=StringIO())
    assert not (tmp_path / "demo-credentials.txt").exists()
