"""Fixtures of the consumers service tests: the stage (see scene.py)."""

from __future__ import annotations

import pytest

from accounts.models import Organization, User
from tests.consumers.services.scene import Stage, build_stage


@pytest.fixture
def stage(organization: Organization, owner: User, admin_member: User, member: User) -> Stage:
    return build_stage(organization, owner)
