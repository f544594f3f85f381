"""Query-count baselines of the consumers API's lists: a list of many rows costs as many
queries as a list of one (session, user, the scoping object, count, rows, and a prefetch
where there is one). A test failing here means an N+1 crept in."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from accounts.models import User
from consumers import services
from tests.consumers.api.urls import PROVIDER_SUBSCRIPTIONS, app_url, apps_url, plans_url
from tests.consumers.services.scene import Stage, published_product
from tests.marketplace.api.helpers import Api, ok

ROWS = 6


@pytest.fixture
def busy(stage: Stage, member: User) -> Stage:
    """Checkout with ROWS rotated keys (each limited to a product) and ROWS subscriptions;
    ROWS more apps; Weather with ROWS more plans tied to its version."""
    for n in range(ROWS):
        product = published_product(stage.provider.owner, stage.provider.organization, f"product-{n}")
        services.subscription_request(actor=member, app=stage.app, product=product)
        other_app = services.app_create(actor=member, organization=stage.acme, name=f"App {n}")
        services.subscription_request(actor=member, app=other_app, product=product)
        key, _plaintext = services.api_key_create(actor=member, app=stage.app, name=f"key {n}", products=[product])
        services.api_key_rotate(actor=member, key=key)
        services.plan_create(
            actor=stage.provider.admin, product=stage.product, name=f"Plan {n}", version=stage.product.versions.get()
        )
    return stage


LISTS: list[tuple[str, Callable[[Stage], Api], Callable[[Stage], str], int, int]] = [
    # name, who, url, baseline, rows at least
    ("apps", lambda s: Api(s.app.created_by), lambda s: apps_url(), 4, ROWS + 1),
    ("keys", lambda s: Api(s.app.created_by), lambda s: app_url(s.app.pk, "keys/"), 6, 2 * ROWS),
    ("app subscriptions", lambda s: Api(s.app.created_by), lambda s: app_url(s.app.pk, "subscriptions/"), 5, ROWS),
    ("provider subscriptions", lambda s: Api(s.provider.admin), lambda s: PROVIDER_SUBSCRIPTIONS, 4, 2 * ROWS),
    ("plans, anonymous", lambda s: Api(), lambda s: plans_url("weather"), 4, ROWS + 2),
    ("plans, provider", lambda s: Api(s.provider.member), lambda s: plans_url("weather"), 5, ROWS + 2),
    ("plans, another organization", lambda s: Api(s.app.created_by), lambda s: plans_url("weather"), 7, ROWS + 2),
]


@pytest.mark.parametrize(("name", "who", "url", "baseline", "rows"), LISTS, ids=[entry[0] for entry in LISTS])
def test_a_list_costs_a_fixed_number_of_queries(
    busy: Stage,
    django_assert_max_num_queries: Any,
    name: str,
    who: Callable[[Stage], Api],
    url: Callable[[Stage], str],
    baseline: int,
    rows: int,
) -> None:
    api, path = who(busy), url(busy)

    with django_assert_max_num_queries(baseline):
        body = ok(api.get(path))

    assert body["count"] >= rows
