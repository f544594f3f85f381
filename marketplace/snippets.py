"""Ready-to-run client snippets for a product, filled with the gateway's URL."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from marketplace.models import Product, ProductVersion


@dataclass(frozen=True)
class Snippet:
    title: str
    language: str
    code: str


def product_snippets(product: Product, version: ProductVersion | None, key: str = "$PLATFORM_KEY") -> list[Snippet]:
    """Snippets for calling ``product`` through the gateway with an app key (the
    placeholder ``key`` unless a real key is given)."""
    gateway = settings.GATEWAY_URL
    slug = product.slug
    if product.kind == Product.Kind.REST_API:
        # The first GET without path parameters runs as is; otherwise any GET, then "/".
        operations = list(version.operations.filter(method="GET")) if version else []
        operation = next((op for op in operations if "{" not in op.path), operations[0] if operations else None)
        path = operation.path if operation else "/"
        return [Snippet("curl", "shell", f'curl -H "Authorization: Bearer {key}" \\\n  {gateway}/api/{slug}{path}')]
    if product.kind == Product.Kind.MODEL_API:
        models = list(version.models.all()) if version else []
        chat = next(
            (m.public_name for m in models if "chat" in m.capabilities), models[0].public_name if models else "MODEL"
        )
        python = (
            "from openai import OpenAI\n\n"
            f'client = OpenAI(base_url="{gateway}/v1", api_key="{key}")\n'
            f'reply = client.chat.completions.create(\n    model="{chat}",\n'
            '    messages=[{"role": "user", "content": "Hello!"}],\n)\n'
            "print(reply.choices[0].message.content)"
        )
        body = json.dumps({"model": chat, "messages": [{"role": "user", "content": "Hello!"}]})
        curl = (
            f"curl {gateway}/v1/chat/completions \\\n"
            f'  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            f"  -d '{body}'"
        )
        return [Snippet("OpenAI SDK (Python)", "python", python), Snippet("curl", "shell", curl)]
    if product.kind == Product.Kind.MCP_SERVER:
        config = {
            "mcpServers": {
                slug: {
                    "type": "streamable-http",
                    "url": f"{gateway}/mcp/{slug}",
                    "headers": {"Authorization": f"Bearer {key}"},
                }
            }
        }
        curl = (
            f"curl {gateway}/mcp/{slug} \\\n"
            f'  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            '  -H "Accept: application/json, text/event-stream" \\\n'
            """  -d '{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}'"""
        )
        return [
            Snippet("MCP client configuration (JSON)", "json", json.dumps(config, indent=2)),
            Snippet("curl", "shell", curl),
        ]
    return [
        Snippet(
            "Agent card",
            "shell",
            f'curl -H "Authorization: Bearer {key}" {gateway}/a2a/{slug}/.well-known/agent-card.json',
        ),
        Snippet(
            "Send a message (A2A JSON-RPC)",
            "shell",
            f"curl {gateway}/a2a/{slug} \\\n"
            f'  -H "Authorization: Bearer {key}" -H "Content-Type: application/json" \\\n'
            """  -d '{"jsonrpc": "2.0", "id": 1, "method": "message/send", "params": {"message": """
            """{"role": "user", "messageId": "m1", "parts": [{"kind": "text", "text": "Hello!"}]}}}'""",
        ),
    ]
