"""Fixtures of the consumers API tests: the stage (tests/consumers/services/scene.py)
and a JSON client per persona."""

from __future__ import annotations

import pytest

from accounts.models import Organization, User
from tests.consumers.services.scene import Stage, build_stage
from tests.marketplace.api.helpers import Api


@pytest.fixture
def stage(organization: Organization, owner: User, admin_member: User, member: User) -> Stage:
    return build_stage(organization, owner)


@pytest.fixture
def owner_api(owner: User) -> Api:
    return Api(owner)


@pytest.fixture
def admin_api(admin_member: User) -> Api:
    return Api(admin_member)


@pytest.fixture
def member_api(member: User) -> Api:
    return Api(member)


@pytest.fixture
def outsider_api(outsider: User) -> Api:
    return Api(outsider)


@pytest.fixture
def staff_api(staff: User) -> Api:
    return Api(staff)


@pytest.fixture
def anonymous_api() -> Api:
    return Api()


@pytest.fixture
def provider_api(stage: Stage) -> Api:
    """Weather Co's admin: decides on subscriptions to its products."""
    return Api(stage.provider.admin)
