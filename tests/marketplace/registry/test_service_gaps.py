"""Service-level refusals that the registry import relies on."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Organization, User
from marketplace import services
from marketplace.models import Product

pytestmark = pytest.mark.django_db


def test_product_create_refuses_a_nul_character(organization: Organization, member: User) -> None:
    with pytest.raises(ValidationError):
        services.product_create(
            actor=member,
            organization=organization,
            kind=Product.Kind.MCP_SERVER,
            slug="nul",
            name="Nul",
            summary="a\x00b",
        )
