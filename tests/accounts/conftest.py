"""Fixtures of the accounts tests."""

from __future__ import annotations

import pytest

from accounts import services
from accounts.models import Membership, Organization, Role, User
from tests.accounts.org_helpers import Acme


@pytest.fixture
def acme(organization: Organization, owner: User, admin_member: User, member: User) -> Acme:
    invitation, _token = services.invitation_create(
        actor=owner, organization=organization, email="invitee@example.com", role=Role.MEMBER
    )
    memberships = {m.user_id: m for m in Membership.objects.filter(organization=organization)}
    return Acme(
        organization=organization,
        owner=memberships[owner.pk],
        admin=memberships[admin_member.pk],
        member=memberships[member.pk],
        invitation=invitation,
    )
