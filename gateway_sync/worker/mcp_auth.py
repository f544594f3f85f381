"""Who may use ``/mcp/{server}``, answered the MCP way.

The gateway is the OAuth protected resource in front of every MCP server it serves
(MCP authorization, 2025-11-25): platform keys are its bearer tokens (``Authorization:
Bearer`` or ``x-api-key``), checked by auth.py's ``authenticate`` exactly as on /api. What
differs is the answer to a refusal: a JSON-RPC error body, and on 401 a ``WWW-Authenticate``
challenge whose ``resource_metadata`` points at the RFC 9728 document served here, at
``/.well-known/oauth-protected-resource/mcp/{server}``.
"""

from __future__ import annotations

import json

from aiohttp import web

from gateway_sync.contract.schema import Product
from gateway_sync.worker.app import SETTINGS_KEY, request_snapshot
from gateway_sync.worker.auth import Caller, authenticate
from gateway_sync.worker.mcp_wire import refusal
from gateway_sync.worker.state import CompiledSnapshot

METADATA_PREFIX = "/.well-known/oauth-protected-resource"


def gateway_base(request: web.Request) -> str:
    """GATEWAY_URL when set (behind a proxy the request's own scheme may be wrong), else
    the scheme and Host the client used."""
    configured = request.app[SETTINGS_KEY].gateway_url
    return configured or f"{request.scheme}://{request.host}"


def resource_url(request: web.Request, slug: str) -> str:
    return f"{gateway_base(request)}/mcp/{slug}"


def metadata_url(request: web.Request, slug: str) -> str:
    return f"{gateway_base(request)}{METADATA_PREFIX}/mcp/{slug}"


def mcp_product(snapshot: CompiledSnapshot, slug: str) -> Product | None:
    """The MCP server product ``slug`` names; None if there is none (other kinds included)."""
    product = snapshot.products_by_slug.get(slug)
    return product if product is not None and product.kind == "mcp_server" else None


def authenticate_mcp(
    request: web.Request, snapshot: CompiledSnapshot, product: Product, *, pepper: str
) -> Caller | web.Response:
    """The caller, or the JSON-RPC refusal: 401 (no, unknown or expired key) with the
    challenge, or 403 (key out of scope, no subscription)."""
    checked = authenticate(snapshot, product, request.headers, pepper=pepper)
    if isinstance(checked, Caller):
        return checked
    # auth.py words the refusal (never echoing the key); only the envelope changes here.
    problem = json.loads(checked.body if isinstance(checked.body, bytes) else b"{}")
    detail, reason = str(problem.get("detail", "")), str(problem.get("code", "unauthorized"))
    if checked.status == 401:
        challenge = f'Bearer resource_metadata="{metadata_url(request, product.slug)}"'
        if reason != "missing_api_key":  # RFC 6750: no error code when no token was sent
            challenge += ', error="invalid_token"'
        return refusal(401, detail, reason, headers={"WWW-Authenticate": challenge})
    return refusal(checked.status, detail, reason)


async def protected_resource_metadata(request: web.Request) -> web.Response:
    """``GET /.well-known/oauth-protected-resource/mcp/{server}``: the RFC 9728 document."""
    slug = request.match_info["server"]
    snapshot = request_snapshot(request)
    if snapshot is None:
        return web.json_response({"error": "not_ready"}, status=503, headers={"Retry-After": "1"})
    if mcp_product(snapshot, slug) is None:
        return web.json_response({"error": "not_found", "detail": f"No MCP server {slug!r}."}, status=404)
    document: dict[str, object] = {
        "resource": resource_url(request, slug),
        "bearer_methods_supported": ["header"],
        "resource_name": slug,
    }
    servers = request.app[SETTINGS_KEY].mcp_authorization_servers
    if servers:
        document["authorization_servers"] = list(servers)
    return web.json_response(document, headers={"Cache-Control": "public, max-age=300"})
