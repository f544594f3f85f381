"""Shared fixtures. The personas of every permission test: an organization's owner, an
admin and a member, an outsider (a member of another organization) and platform staff."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.core.cache import cache
from django.test import Client

from accounts.models import Organization, Role, User
from tests.factories import MembershipFactory, OrganizationFactory, UserFactory


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    """Each test starts with an empty cache (rate limits, publish scheduling)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def organization(db: None) -> Organization:
    return OrganizationFactory(name="Acme", slug="acme")


@pytest.fixture
def owner(organization: Organization) -> User:
    return MembershipFactory(organization=organization, role=Role.OWNER, user__email="owner@acme.test").user


@pytest.fixture
def admin_member(organization: Organization) -> User:
    return MembershipFactory(organization=organization, role=Role.ADMIN, user__email="admin@acme.test").user


@pytest.fixture
def member(organization: Organization) -> User:
    return MembershipFactory(organization=organization, role=Role.MEMBER, user__email="member@acme.test").user


@pytest.fixture
def outsider(db: None) -> User:
    """A member (owner, even) of another organization: must see nothing of Acme."""
    return MembershipFactory(
        organization__name="Other", organization__slug="other", role=Role.OWNER, user__email="outsider@other.test"
    ).user


@pytest.fixture
def staff(db: None) -> User:
    return UserFactory(email="staff@platform.test", is_staff=True)


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client
