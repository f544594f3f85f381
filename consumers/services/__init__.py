"""The only writers of the consumers app.

- ``apps``: consumer apps;
- ``keys``: API keys (create, set quotas, revoke, rotate with overlap, expiry);
- ``plans``: the plans products offer (provider side);
- ``subscriptions``: request, approve, reject, suspend, resume, cancel, expire.

Every change the gateway enforces calls ``gateway_sync.services.config_mark_changed`` in
the same transaction, so the snapshot pipeline publishes it.
"""

from __future__ import annotations

from consumers.services.apps import app_create, app_delete, app_update
from consumers.services.keys import (
    api_key_create,
    api_key_limits_update,
    api_key_revoke,
    api_key_rotate,
    api_keys_expire,
)
from consumers.services.plans import plan_archive, plan_create, plan_ensure_default, plan_update
from consumers.services.subscriptions import (
    subscription_approve,
    subscription_cancel,
    subscription_reject,
    subscription_request,
    subscription_resume,
    subscription_suspend,
    subscriptions_expire,
)

__all__ = [
    "api_key_create",
    "api_key_limits_update",
    "api_key_revoke",
    "api_key_rotate",
    "api_keys_expire",
    "app_create",
    "app_delete",
    "app_update",
    "plan_archive",
    "plan_create",
    "plan_ensure_default",
    "plan_update",
    "subscription_approve",
    "subscription_cancel",
    "subscription_reject",
    "subscription_request",
    "subscription_resume",
    "subscription_suspend",
    "subscriptions_expire",
]
