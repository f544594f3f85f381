from __future__ import annotations

import json
from typing import Any

import markdown as markdown_lib
import nh3
from django import template
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

ALLOWED_TAGS = {
    "a",
    "abbr",
    "b",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "li",
    "ol",
    "p",
    "pre",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}


@register.filter
def render_markdown(text: str) -> SafeString:
    """Providers' markdown, rendered and then sanitised (no script, no style, no
    images from elsewhere, links made safe)."""
    html = markdown_lib.markdown(text or "", extensions=["fenced_code", "tables"], output_format="html")
    cleaned = nh3.clean(
        html, tags=ALLOWED_TAGS, link_rel="nofollow noopener noreferrer", url_schemes={"http", "https", "mailto"}
    )
    return mark_safe(cleaned)  # noqa: S308 (sanitised by nh3 just above)


@register.filter
def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


@register.filter
def kind_badge(kind: str) -> str:
    return {"rest_api": "REST", "model_api": "LLM", "mcp_server": "MCP", "agent": "A2A"}.get(kind, kind)
