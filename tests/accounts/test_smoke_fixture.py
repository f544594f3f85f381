from __future__ import annotations

from accounts.models import Membership


def test_personas_exist(owner, member, outsider, staff, organization):
    assert Membership.objects.filter(organization=organization).count() == 2
    assert not Membership.objects.filter(organization=organization, user=outsider).exists()
