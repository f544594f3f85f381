"""Fixtures of the consumers API tests: the stage (tests/consumers/services/scene.py)
and a JSON client per persona."""

from __future__ import annotations

import pytest

from accounts.models import Organization, User
from tests.consumers.services.scene import Stage, build_stage
from tests.marketplace.api.helpers import Api
from tests.marketplace.api.personas import (  # noqa: F401 (fixtures)
    admin_api,
    anonymous_api,
    member_api,
    outsider_api,
    owner_api,
    staff_api,
)


@pytest.fixture
def stage(organization: Organization, owner: User, admin_member: User, member: User) -> Stage:
    return build_stage(organization, owner)


@pytest.fixture
def provider_api(stage: Stage) -> Api:
    """Weather Co's admin: decides on subscriptions to its products."""
    return Api(stage.provider.admin)
