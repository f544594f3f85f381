"""The consumers API is in the OpenAPI schema, which validates without a warning; only
the responses that create a key describe its plaintext."""

from __future__ import annotations

from io import StringIO

import yaml
from django.core.management import call_command

CONSUMERS_PATHS = {
    "/api/v1/apps/": {"get", "post"},
    "/api/v1/apps/{app_id}/": {"get", "patch", "delete"},
    "/api/v1/apps/{app_id}/keys/": {"get", "post"},
    "/api/v1/apps/{app_id}/keys/{key_id}/": {"get", "patch", "delete"},
    "/api/v1/apps/{app_id}/keys/{key_id}/rotate/": {"post"},
    "/api/v1/apps/{app_id}/keys/{key_id}/revoke/": {"post"},
    "/api/v1/apps/{app_id}/subscriptions/": {"get", "post"},
    "/api/v1/subscriptions/{subscription_id}/": {"get"},
    "/api/v1/subscriptions/{subscription_id}/cancel/": {"post"},
    "/api/v1/subscriptions/{subscription_id}/approve/": {"post"},
    "/api/v1/subscriptions/{subscription_id}/reject/": {"post"},
    "/api/v1/subscriptions/{subscription_id}/suspend/": {"post"},
    "/api/v1/subscriptions/{subscription_id}/resume/": {"post"},
    "/api/v1/provider/subscriptions/": {"get"},
    "/api/v1/products/{slug}/plans/": {"get", "post"},
    "/api/v1/plans/{plan_id}/": {"get", "patch"},
    "/api/v1/plans/{plan_id}/archive/": {"post"},
}


def test_the_schema_validates_without_warnings_and_describes_every_consumers_endpoint() -> None:
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = yaml.safe_load(out.getvalue())
    paths = schema["paths"]
    assert {path: set(paths.get(path, {})) - {"parameters"} for path in CONSUMERS_PATHS} == CONSUMERS_PATHS
    # The marketplace's routes under /products/{slug}/ are still there beside plans/.
    assert {"/api/v1/products/{slug}/", "/api/v1/products/{slug}/versions/"} <= set(paths)
    components = schema["components"]["schemas"]
    assert "key" not in components["KeyOutput"]["properties"]
    assert "key" in components["KeyCreatedOutput"]["required"]
    assert {"key", "replaces"} <= set(components["KeyRotatedOutput"]["required"])
    assert components["SubscriptionStatusEnum"]["enum"] == [
        "pending",
        "approved",
        "rejected",
        "suspended",
        "cancelled",
        "expired",
    ]
    assert components["ApiKeyStatusEnum"]["enum"] == ["active", "rotating", "expired", "revoked"]
    # Plans are open to anonymous readers; changing them needs a sign-in.
    assert {} in paths["/api/v1/products/{slug}/plans/"]["get"]["security"]
    assert {} not in paths["/api/v1/products/{slug}/plans/"]["post"]["security"]
    rotate = paths["/api/v1/apps/{app_id}/keys/{key_id}/rotate/"]["post"]
    assert set(rotate["responses"]) == {"201"}
    overlap = components["KeyRotateInputRequest"]["properties"]["overlap_seconds"]
    assert (overlap["minimum"], overlap["maximum"], overlap["default"]) == (0, 604_800, 3600)
    # A key's quotas: shown on every key, optional when creating one, changed by PATCH.
    quotas = {"requests_per_second", "requests_per_minute", "requests_per_day", "requests_per_month"}
    assert quotas <= set(components["KeyOutput"]["properties"])
    assert quotas <= set(components["KeyInputRequest"]["properties"])
    assert not quotas & set(components["KeyInputRequest"].get("required", []))
    patch = paths["/api/v1/apps/{app_id}/keys/{key_id}/"]["patch"]
    limits = components[patch["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    assert set(limits["properties"]) == quotas
    assert limits["properties"]["requests_per_minute"]["minimum"] == 1
