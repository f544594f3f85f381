"""The marketplace API is in the OpenAPI schema, which validates without a warning."""

from __future__ import annotations

from io import StringIO

import yaml
from django.core.management import call_command

MARKETPLACE_PATHS = [
    "/api/v1/products/",
    "/api/v1/products/{slug}/",
    "/api/v1/products/{slug}/icon/",
    "/api/v1/products/{slug}/versions/",
    "/api/v1/products/{slug}/versions/{version}/",
    "/api/v1/products/{slug}/versions/{version}/openapi/",
    "/api/v1/products/{slug}/versions/{version}/models/",
    "/api/v1/products/{slug}/versions/{version}/discover/",
    "/api/v1/products/{slug}/versions/{version}/rest-to-mcp/",
    "/api/v1/products/{slug}/versions/{version}/rest-to-mcp/higress.yaml",
    "/api/v1/products/{slug}/versions/{version}/agent-card/",
    "/api/v1/products/{slug}/versions/{version}/submit/",
    "/api/v1/products/{slug}/versions/{version}/withdraw/",
    "/api/v1/products/{slug}/versions/{version}/deprecate/",
    "/api/v1/products/{slug}/versions/{version}/retire/",
    "/api/v1/reviews/",
    "/api/v1/reviews/{version_id}/approve/",
    "/api/v1/reviews/{version_id}/reject/",
    "/api/v1/catalog/",
    "/api/v1/catalog/{slug}/",
]


def test_the_schema_validates_without_warnings_and_lists_every_marketplace_endpoint() -> None:
    out = StringIO()

    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)

    schema = yaml.safe_load(out.getvalue())
    assert [path for path in MARKETPLACE_PATHS if path not in schema["paths"]] == []
    version = schema["components"]["schemas"]["VersionDetailOutput"]["properties"]
    assert "has_upstream_secret" in version
    assert "upstream_secret" not in version
    assert "upstream_secret_encrypted" not in version
    assert "upstream_secret" in schema["components"]["schemas"]["PatchedVersionUpdateInputRequest"]["properties"]
    catalog = schema["paths"]["/api/v1/catalog/"]["get"]
    assert {"q", "mode", "kind", "category", "provider", "limit", "offset"} <= {
        p["name"] for p in catalog["parameters"]
    }
    assert {} in catalog["security"]
