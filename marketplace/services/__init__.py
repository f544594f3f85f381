"""The only writers of the marketplace. See each module:

- ``products``: products (identity, catalog data, icon);
- ``versions``: a draft version's upstream and kind-specific specification;
- ``review``: the lifecycle draft -> in_review -> published -> deprecated -> retired.
"""

from __future__ import annotations

from marketplace.services.products import product_create, product_delete, product_set_icon, product_update
from marketplace.services.review import (
    version_approve,
    version_deprecate,
    version_reject,
    version_retire,
    version_submit,
    version_withdraw,
)
from marketplace.services.versions import (
    version_create,
    version_delete,
    version_discover_mcp,
    version_set_agent_card,
    version_set_models,
    version_set_openapi,
    version_set_rest_to_mcp,
    version_update,
)

__all__ = [
    "product_create",
    "product_delete",
    "product_set_icon",
    "product_update",
    "version_approve",
    "version_create",
    "version_delete",
    "version_deprecate",
    "version_discover_mcp",
    "version_reject",
    "version_retire",
    "version_set_agent_card",
    "version_set_models",
    "version_set_openapi",
    "version_set_rest_to_mcp",
    "version_submit",
    "version_update",
    "version_withdraw",
]
