"""A JSON API client per persona, as fixtures shared by the API test suites (imported
into their conftests)."""

from __future__ import annotations

import pytest

from accounts.models import User
from tests.marketplace.api.helpers import Api


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
