"""Delivering one whole (not streamed) upstream answer: read it (up to ``MAX_WHOLE_RESPONSE``),
note its usage and text for accounting, apply the response guardrails (block: a 400
``content_filter`` error; redact: the redacted body), and name the public model in it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from gateway_sync.worker.errors_openai import openai_error
from gateway_sync.worker.guard import LlmGuard
from gateway_sync.worker.llm_usage import UsageTally, completion_text, reported_usage
from gateway_sync.worker.llm_wire import Endpoint, decode_json, encode_json
from gateway_sync.worker.record import RequestRecord

log = logging.getLogger(__name__)

# Whole (not streamed) upstream answers are read up to this size.
MAX_WHOLE_RESPONSE = 32 * 1024 * 1024


@dataclass(eq=False)
class WholeAnswer:
    """What a whole answer produced, for accounting: ``produced`` once its body was read."""

    produced: bool = False
    tally: UsageTally = field(default_factory=UsageTally)
    texts: list[str] = field(default_factory=list)


def note_guardrail_actions(record: RequestRecord, actions: list[str]) -> None:
    for action in actions:
        if action not in record.guardrail_actions:
            record.guardrail_actions.append(action)


async def deliver_whole(
    upstream: aiohttp.ClientResponse,
    *,
    answer: WholeAnswer,
    record: RequestRecord,
    endpoint: Endpoint,
    guard: LlmGuard | None,
    headers: dict[str, str],
    public_model: str,
) -> web.StreamResponse:
    async with upstream:
        try:
            payload = await upstream.content.read(MAX_WHOLE_RESPONSE)
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("product %s: upstream response broke off: %r", record.product_slug, exc)
            return openai_error(502, "The upstream's response broke off.", code="upstream_broken", headers=headers)
        status = upstream.status
        content_type = upstream.headers.get("Content-Type", "application/json")
    data = decode_json(payload)
    answer.produced = True
    if isinstance(data, dict):
        answer.tally.add(reported_usage(data))
        answer.texts.append(completion_text(data))
        if guard is not None and guard.inspects_responses and endpoint != "embeddings":
            outcome = guard.check_response(data, endpoint)
            note_guardrail_actions(record, outcome.actions)
            if outcome.blocked:
                return openai_error(400, outcome.message, code="content_filter", headers=headers)
            if any(action.startswith("redact:") for action in outcome.actions):
                payload = encode_json(outcome.body)
        upstream_model = data.get("model")
        if isinstance(upstream_model, str) and upstream_model != public_model:
            payload = payload.replace(
                f'"model":"{upstream_model}"'.encode(), f'"model":"{public_model}"'.encode(), 1
            ).replace(f'"model": "{upstream_model}"'.encode(), f'"model": "{public_model}"'.encode(), 1)
    response = web.Response(status=status, body=payload, headers=headers)
    response.headers["Content-Type"] = content_type
    return response
