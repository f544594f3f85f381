"""The consumers API's URLs, for the tests."""

from __future__ import annotations

API = "/api/v1"


def apps_url() -> str:
    return f"{API}/apps/"


def app_url(app_id: int, rest: str = "") -> str:
    return f"{API}/apps/{app_id}/{rest}"


def key_url(app_id: int, key_id: int, rest: str = "") -> str:
    return f"{API}/apps/{app_id}/keys/{key_id}/{rest}"


def subscription_url(subscription_id: int, rest: str = "") -> str:
    return f"{API}/subscriptions/{subscription_id}/{rest}"


def plans_url(slug: str) -> str:
    return f"{API}/products/{slug}/plans/"


def plan_url(plan_id: int, rest: str = "") -> str:
    return f"{API}/plans/{plan_id}/{rest}"


PROVIDER_SUBSCRIPTIONS = f"{API}/provider/subscriptions/"
