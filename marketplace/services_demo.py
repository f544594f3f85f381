"""The demo products that `make run` publishes: demo-echo (REST), demo-llm (model API)
and demo-tools (MCP), whose upstreams are the servers in ``demo_upstreams`` that the
embedded Procfile starts (on 127.0.0.1:9101-9103 unless DEMO_*_PORT say otherwise)."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import transaction

from accounts.models import Organization, User
from demo_upstreams import demo_mcp, echo
from demo_upstreams.inprocess import serve_asgi
from marketplace import services
from marketplace.models import Product, ProductVersion


def _demo_urls() -> tuple[str, str, str]:
    """The upstream URLs of demo-echo, demo-llm and demo-tools (ports from settings)."""
    return (
        f"http://127.0.0.1:{settings.DEMO_ECHO_PORT}",
        f"http://127.0.0.1:{settings.DEMO_LLM_PORT}/v1",
        f"http://127.0.0.1:{settings.DEMO_TOOLS_PORT}{demo_mcp.MCP_PATH}",
    )


DEMO_MODELS = [
    {
        "public_name": "demo-chat",
        "upstream_name": "demo-chat",
        "context_window": 8192,
        "input_price_per_mtok": "0.50",
        "output_price_per_mtok": "1.50",
        "capabilities": ["chat", "completions", "streaming", "tools"],
    },
    {
        "public_name": "demo-embed",
        "upstream_name": "demo-embed",
        "context_window": 8192,
        "input_price_per_mtok": "0.02",
        "output_price_per_mtok": "0",
        "capabilities": ["embeddings"],
    },
]


def _publish(admin: User, provider: User, version: ProductVersion) -> None:
    services.version_submit(actor=provider, version=version)
    services.version_approve(actor=admin, version=version)


def _product(
    provider: User,
    organization: Organization,
    kind: str,
    slug: str,
    name: str,
    summary: str,
    description: str,
    categories: list[str],
    tags: list[str],
) -> tuple[Product, ProductVersion]:
    product = services.product_create(
        actor=provider,
        organization=organization,
        kind=kind,
        slug=slug,
        name=name,
        summary=summary,
        description=description,
        categories=categories,
        tags=tags,
    )
    return product, services.version_create(
        actor=provider, product=product, version="1.0.0", changelog="First release."
    )


def demo_products_seed(*, admin: User, provider: User, organization: Organization) -> list[str]:
    """Create and publish the demo products that do not exist yet. Returns their slugs."""
    created: list[str] = []
    echo_url, llm_url, tools_url = _demo_urls()
    if not Product.objects.filter(slug="demo-echo").exists():
        with transaction.atomic():
            _, version = _product(
                provider,
                organization,
                Product.Kind.REST_API,
                "demo-echo",
                "Demo Echo",
                "A REST API that echoes requests back, for trying the gateway.",
                "Echoes the method, path, query, headers and body of every request as JSON. "
                "`/status/{code}` answers any status and `/delay/{seconds}` answers late: handy for "
                "testing retries, timeouts and fallbacks.",
                ["developer-tools"],
                ["http", "testing"],
            )
            services.version_update(actor=provider, version=version, upstream_url=echo_url)
            services.version_set_openapi(
                actor=provider, version=version, document=json.dumps(echo.echo_openapi_document(echo_url))
            )
            _publish(admin, provider, version)
        created.append("demo-echo")
    if not Product.objects.filter(slug="demo-llm").exists():
        with transaction.atomic():
            _, version = _product(
                provider,
                organization,
                Product.Kind.MODEL_API,
                "demo-llm",
                "Demo LLM",
                "An OpenAI-compatible chat and embeddings model for trying the platform.",
                "A deterministic mock of an OpenAI-compatible API: `demo-chat` streams, calls tools and "
                "reports usage; `demo-embed` returns embeddings. It can be told to fail or slow down.",
                ["ai-models"],
                ["llm", "openai", "chat", "embeddings"],
            )
            services.version_update(actor=provider, version=version, upstream_url=llm_url)
            services.version_set_models(actor=provider, version=version, models=DEMO_MODELS)
            _publish(admin, provider, version)
        created.append("demo-llm")
    if not Product.objects.filter(slug="demo-tools").exists():
        _, version = _product(
            provider,
            organization,
            Product.Kind.MCP_SERVER,
            "demo-tools",
            "Demo Tools",
            "Everyday utilities as MCP tools: arithmetic, units, time zones, country facts.",
            "An MCP server built with the official `mcp` SDK. Every tool has an input and an output schema.",
            ["developer-tools", "productivity"],
            ["mcp", "utilities"],
        )
        # Discover the tools from the same server run in-process, then point at its real port.
        with serve_asgi(lambda port: demo_mcp.create_app(port=port)) as local_url:
            services.version_update(actor=provider, version=version, upstream_url=f"{local_url}{demo_mcp.MCP_PATH}")
            services.version_discover_mcp(actor=provider, version=version)
        with transaction.atomic():
            services.version_update(actor=provider, version=version, upstream_url=tools_url)
            _publish(admin, provider, version)
        created.append("demo-tools")
    return created
