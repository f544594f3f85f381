"""The snapshot: everything a gateway worker needs, as plain immutable data.

This module is the one contract between the portal (which compiles it from the database)
and the workers (which enforce it). It imports nothing from Django. Field names are
stable; a change that workers must understand bumps ``SCHEMA_VERSION``.

Every type is a frozen, keyword-only msgspec Struct that refuses unknown fields, leaves
fields at their default out of the encoding (a third smaller at scale) and is not tracked
by the garbage collector (snapshots hold no reference cycles; 100,000 tracked objects made
every compile pay for collections).
Money is in integer micro-dollars and times are Unix epoch seconds, so the encoding is
exact and canonical.
"""

from __future__ import annotations

from typing import Literal

import msgspec

SCHEMA_VERSION = 1

ProductKind = Literal["rest_api", "model_api", "mcp_server", "agent"]
GuardrailAction = Literal["block", "redact", "log"]
GuardrailKind = Literal[
    "keyword",
    "regex",
    "pii_email",
    "pii_phone",
    "pii_credit_card",
    "pii_iban",
    "pii_custom",
    "prompt_injection",
    "max_prompt_chars",
]
CanaryMode = Literal["weight", "header", "apps"]


class Upstream(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    url: str
    auth_header: str = ""
    # A Fernet token under the platform's UPSTREAM_SECRET_KEYS; workers decrypt it.
    secret_encrypted: str = ""
    connect_timeout_ms: int = 5_000
    read_timeout_ms: int = 60_000
    tls_verify: bool = True


class ModelOffering(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    public_name: str
    upstream_name: str
    context_window: int
    input_microusd_per_mtok: int
    output_microusd_per_mtok: int
    capabilities: tuple[str, ...] = ()


class Tool(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    name: str
    # For REST-to-MCP tools: the REST mapping (marketplace.specs.rest_to_mcp's to_dict()).
    rest_mapping: dict[str, object] | None = None


class Product(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: int
    slug: str
    kind: ProductKind
    organization_id: int
    public: bool
    version_id: int
    version: str
    deprecated: bool = False
    sunset_at: float | None = None
    upstream: Upstream
    mcp_transport: str = ""
    models: tuple[ModelOffering, ...] = ()
    tools: tuple[Tool, ...] = ()
    rest_to_mcp_config_encrypted: str = ""
    guardrail_ids: tuple[int, ...] = ()


class Plan(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: int
    product_id: int
    name: str
    requests_per_second: int | None = None
    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    requests_per_month: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    monthly_budget_microusd: int | None = None
    allowed_models: tuple[str, ...] = ()
    allowed_tools: tuple[str, ...] = ()
    guardrail_ids: tuple[int, ...] = ()


class App(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: int
    organization_id: int
    name: str


class Key(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """An API key, by the HMAC-SHA256 (hex) of the whole key under the key pepper."""

    hash: str
    prefix: str
    app_id: int
    expires_at: float | None = None
    # Empty: every product the app subscribes to.
    product_ids: tuple[int, ...] = ()
    # The key's own request quotas, across every product it calls (None: only the plans').
    requests_per_second: int | None = None
    requests_per_minute: int | None = None
    requests_per_day: int | None = None
    requests_per_month: int | None = None


class Subscription(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    """An approved subscription (no other status reaches a snapshot)."""

    id: int
    app_id: int
    product_id: int
    plan_id: int
    expires_at: float | None = None


class Target(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: int
    name: str
    upstream: Upstream
    weight: int = 100
    # For model routes: the upstream model name to send, overriding the product's mapping.
    model: str = ""


class RouteMatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    path_prefix: str = ""
    model: str = ""
    host: str = ""
    headers: dict[str, str] = {}


class Timeouts(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    connect_ms: int = 5_000
    first_byte_ms: int = 60_000
    total_ms: int = 300_000
    idle_ms: int = 60_000


class Retry(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    count: int = 0
    on_statuses: tuple[int, ...] = (502, 503, 504)
    on_timeout: bool = True
    backoff_ms: int = 100


class Cooldown(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    failures: int = 5
    window_s: int = 30
    cooldown_s: int = 30


class Canary(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    target_id: int
    mode: CanaryMode
    weight: int = 0
    header_name: str = ""
    header_value: str = ""
    app_ids: tuple[int, ...] = ()


class SafetyLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    requests_per_second: int | None = None
    requests_per_minute: int | None = None


class Route(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    id: int
    product_id: int
    priority: int = 0
    match: RouteMatch
    targets: tuple[Target, ...]
    timeouts: Timeouts = Timeouts()
    retry: Retry = Retry()
    # Target ids (of this route) or model names tried in order when the chosen target fails.
    fallback_target_ids: tuple[int, ...] = ()
    fallback_models: tuple[str, ...] = ()
    cooldown: Cooldown = Cooldown()
    canary: Canary | None = None
    limits: SafetyLimits = SafetyLimits()
    guardrail_ids: tuple[int, ...] = ()
    # Model APIs: end a stream when the caller's token budget runs out mid-way (and a
    # further reservation is refused); off, the stream runs to its end.
    cut_stream_on_budget: bool = False


class GuardrailRule(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    kind: GuardrailKind
    action: GuardrailAction
    on_request: bool = True
    on_response: bool = False
    words: tuple[str, ...] = ()
    pattern: str = ""
    max_chars: int | None = None


class GuardrailPolicy(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False
):
    id: int
    name: str
    rules: tuple[GuardrailRule, ...]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True, gc=False):
    schema_version: int = SCHEMA_VERSION
    version: int
    created_at: float
    source_generation: int
    products: tuple[Product, ...] = ()
    plans: tuple[Plan, ...] = ()
    apps: tuple[App, ...] = ()
    keys: tuple[Key, ...] = ()
    subscriptions: tuple[Subscription, ...] = ()
    routes: tuple[Route, ...] = ()
    guardrails: tuple[GuardrailPolicy, ...] = ()
