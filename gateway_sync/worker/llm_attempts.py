"""The upstream side of one /v1 request: which upstreams to try, in which order, and trying
them.

The stages: the route's target (its canary picked by weight, header or app), then the
route's other targets, then the route's fallback models (each through its own route when
it has one), a target cooling down skipped while anything else is left. Each stage is
tried once (the first one also gets the route's retries) and the next one is tried on a
connection failure or a timeout before the first byte, a 429 or a 5xx, and on a stream
that ends without its terminal chunk before any content reached the client
(``RelayEnd.RETRY``). Any other answer, and the last stage's failure, goes to the client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway_sync.contract.schema import ModelOffering, Product, Route, Target, Upstream
from gateway_sync.worker.auth import Caller
from gateway_sync.worker.errors_openai import openai_error
from gateway_sync.worker.guard import LlmGuard
from gateway_sync.worker.llm_stream import RelayEnd, StreamRelay
from gateway_sync.worker.llm_whole import WholeAnswer, deliver_whole
from gateway_sync.worker.llm_wire import ENDPOINT_PATHS, Endpoint, LlmRequest, decode_json, upstream_body
from gateway_sync.worker.proxy_rest import RestProxy
from gateway_sync.worker.record import UPSTREAM_TIMEOUT, UPSTREAM_UNREACHABLE, RequestRecord
from gateway_sync.worker.routing import fallback_targets, pick_available_target, select_route
from gateway_sync.worker.wire import REQUEST_ID, client_timeout, forwarded_request_headers, upstream_url

log = logging.getLogger(__name__)

ATTEMPTS = "X-Gateway-Attempts"
TARGET = "X-Gateway-Target"
MODEL = "X-Gateway-Model"


@dataclass(frozen=True, slots=True)
class Stage:
    """One upstream to try: a target (None: the product's own upstream) and a model."""

    target: Target | None
    upstream: Upstream
    upstream_model: str
    offering: ModelOffering
    route: Route | None


def model_route(
    snapshot_routes: tuple[Route, ...], *, public_name: str, path: str, request: web.Request
) -> Route | None:
    """The route for a model: among the routes naming it (``RouteMatch.model``), else the
    routes naming no model, the best fit by select_route's rules."""
    named = [r for r in snapshot_routes if r.match.model == public_name]
    found = select_route(named, path=path, host=request.host, headers=request.headers) if named else None
    if found is not None:
        return found
    generic = [r for r in snapshot_routes if not r.match.model]
    return select_route(generic, path=path, host=request.host, headers=request.headers)


def fallback_stages(
    rest: RestProxy,
    request: web.Request,
    endpoint: Endpoint,
    *,
    snapshot_routes: tuple[Route, ...],
    product: Product,
    offering: ModelOffering,
    route: Route | None,
    caller: Caller,
) -> list[Stage]:
    """The stages in the order they are tried (see the module's docstring)."""
    cooling = rest.cooldowns.cooling
    app_id = caller.key.app_id
    if route is None:
        return [Stage(None, product.upstream, offering.upstream_name, offering, None)]
    chosen = pick_available_target(route, app_id=app_id, headers=request.headers, rng=rest.rng, cooling=cooling)
    stages = [Stage(chosen, chosen.upstream, chosen.model or offering.upstream_name, offering, route)]
    for target in fallback_targets(route, chosen, cooling=cooling):
        stages.append(Stage(target, target.upstream, target.model or offering.upstream_name, offering, route))
    allowed = caller.plan.allowed_models
    for name in route.fallback_models:
        other = next((o for o in product.models if o.public_name == name), None)
        if other is None or other.public_name == offering.public_name or (allowed and name not in allowed):
            continue
        other_route = model_route(snapshot_routes, public_name=name, path=ENDPOINT_PATHS[endpoint], request=request)
        if other_route is None or other_route.match.model != name:
            stages.append(Stage(None, product.upstream, other.upstream_name, other, None))
            continue
        target = pick_available_target(
            other_route, app_id=app_id, headers=request.headers, rng=rest.rng, cooling=cooling
        )
        stages.append(Stage(target, target.upstream, target.model or other.upstream_name, other, other_route))
    # A target cooling down is skipped while the chain has anything else to try.
    warm = [stage for stage in stages if stage.target is None or not cooling(stage.target.id)]
    return warm or stages


class AttemptLoop:
    """Tries the stages in turn for one request. Afterwards ``served`` is the model that
    answered (or was tried last) and ``whole`` what a whole answer produced; a streamed
    answer's is on the ``relay``."""

    def __init__(
        self,
        request: web.Request,
        *,
        rest: RestProxy,
        endpoint: Endpoint,
        request_id: str,
        record: RequestRecord,
        parsed: LlmRequest,
        guard: LlmGuard | None,
        relay: StreamRelay | None,
    ) -> None:
        self.request = request
        self.rest = rest
        self.endpoint = endpoint
        self.request_id = request_id
        self.record = record
        self.parsed = parsed
        self.guard = guard
        self.relay = relay
        self.served: ModelOffering | None = None
        self.whole = WholeAnswer()

    async def run(self, stages: list[Stage], headers: dict[str, str]) -> web.StreamResponse:
        try:
            return await self._run(stages, headers)
        except asyncio.CancelledError:
            # Cancelled (shutdown, a second SIGTERM): the stream will never be ended, so a
            # reconnecting client must not wait on its buffer (abandon does no I/O).
            if self.relay is not None:
                await self.relay.abandon()
            raise

    async def _run(self, stages: list[Stage], headers: dict[str, str]) -> web.StreamResponse:
        loop = asyncio.get_running_loop()
        relay, record = self.relay, self.record
        first_route = stages[0].route
        deadline = None if first_route is None else loop.time() + first_route.timeouts.total_ms / 1000
        attempts = 0
        failure: web.Response | None = None  # built when needed: not on every request
        for index, stage in enumerate(stages):
            retries_left = stage.route.retry.count if index == 0 and stage.route is not None else 0
            backoff = 0
            is_last = index == len(stages) - 1
            while True:
                attempts += 1
                record.attempts = attempts
                record.target_id = stage.target.id if stage.target is not None else None
                self.served = stage.offering
                extra = {ATTEMPTS: str(attempts), MODEL: stage.offering.public_name}
                if stage.target is not None:
                    extra[TARGET] = stage.target.name
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    record.upstream_error = UPSTREAM_TIMEOUT
                    failure = openai_error(504, "The upstream did not answer in time.", code="upstream_timeout")
                    break
                sent = await self._send(stage, remaining)
                if isinstance(sent, BaseException):
                    self._cooldown(stage)
                    failure = self._failure_for(sent)
                    retry = stage.route is not None and stage.route.retry.on_timeout
                else:
                    status = sent.status
                    if status < 400:
                        record.upstream_error = ""
                        if relay is None:
                            return await deliver_whole(
                                sent,
                                answer=self.whole,
                                record=record,
                                endpoint=self.endpoint,
                                guard=self.guard,
                                headers={**headers, **extra},
                                public_model=self.parsed.model,
                            )
                        relay.headers.update(extra)
                        end = await self._stream(relay, sent, stage)
                        if end is not RelayEnd.RETRY:
                            return relay.response or web.Response(status=499)
                        self._cooldown(stage)
                        failure = openai_error(
                            502, "The upstream's stream ended before its last chunk.", code="upstream_stream_broken"
                        )
                        retry = False
                    elif status == 429 or status >= 500:
                        self._cooldown(stage)
                        if is_last and not (retries_left > 0 and self._retries_status(stage, status)):
                            return await self._pass_error(sent, {**headers, **extra})
                        retry = self._retries_status(stage, status)
                        sent.release()
                    else:
                        return await self._pass_error(sent, {**headers, **extra})
                if retry and retries_left > 0:
                    retries_left -= 1
                    backoff_ms = stage.route.retry.backoff_ms if stage.route is not None else 100
                    delay = backoff_ms / 1000 * 2**backoff
                    backoff += 1
                    await asyncio.sleep(min(delay, 5.0))
                    continue
                break
        if relay is not None and relay.response is not None:
            await relay.send_error("No upstream could complete the stream.", code="upstream_unavailable")
            await relay.end()
            return relay.response
        if failure is None:
            failure = openai_error(502, "No upstream could be tried.", code="upstream_unreachable")
        failure.headers.update(headers)
        return failure

    @staticmethod
    def _retries_status(stage: Stage, status: int) -> bool:
        return stage.route is not None and status in stage.route.retry.on_statuses

    def _cooldown(self, stage: Stage) -> None:
        if stage.target is not None and stage.route is not None:
            self.rest.cooldowns.record_failure(stage.target.id, stage.route.cooldown)

    def _failure_for(self, exc: BaseException) -> web.Response:
        if isinstance(exc, TimeoutError):
            self.record.upstream_error = UPSTREAM_TIMEOUT
            return openai_error(504, "The upstream did not answer in time.", code="upstream_timeout")
        self.record.upstream_error = UPSTREAM_UNREACHABLE
        log.warning("product %s: upstream unreachable: %r", self.record.product_slug, exc)
        return openai_error(502, "The upstream could not be reached.", code="upstream_unreachable")

    async def _send(self, stage: Stage, remaining: float | None) -> aiohttp.ClientResponse | BaseException:
        upstream = stage.upstream
        headers = CIMultiDict(forwarded_request_headers(self.request.headers))
        headers.popall("Accept-Encoding", None)
        headers["Accept-Encoding"] = "identity"  # the gateway reads the body: no compression
        headers["Content-Type"] = "application/json"
        headers[REQUEST_ID] = self.request_id
        if upstream.auth_header and upstream.secret_encrypted:
            try:
                headers[upstream.auth_header] = self.rest.decrypt(upstream.secret_encrypted)
            except ValueError as exc:
                return exc
        try:
            return await self.rest.session.post(
                upstream_url(upstream, ENDPOINT_PATHS[self.endpoint], ""),
                headers=headers,
                data=upstream_body(self.parsed, stage.upstream_model),
                allow_redirects=False,
                timeout=client_timeout(stage.route, upstream, remaining),
                ssl=upstream.tls_verify,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return exc
        finally:
            self.record.upstream_latency_s = time.perf_counter() - self.record.started

    @staticmethod
    async def _stream(relay: StreamRelay, upstream: aiohttp.ClientResponse, stage: Stage) -> RelayEnd:
        end: RelayEnd | None = None
        try:
            end = await relay.relay(upstream, stage.upstream_model)
        finally:
            if end is RelayEnd.COMPLETE:
                upstream.release()
            else:  # cut short (or cancelled): close the connection so the upstream stops
                upstream.close()
        if end is not RelayEnd.RETRY:
            await relay.end()
        return end

    async def _pass_error(self, upstream: aiohttp.ClientResponse, headers: dict[str, str]) -> web.StreamResponse:
        """The upstream's own error, when it is an OpenAI error object; else a 502."""
        async with upstream:
            try:
                payload = await upstream.content.read(64 * 1024)
            except (aiohttp.ClientError, TimeoutError):
                payload = b""
            status = upstream.status
            retry_after = upstream.headers.get("Retry-After")
        data = decode_json(payload)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            message = str(data["error"].get("message") or f"The upstream answered {status}.")
            code = str(data["error"].get("code") or "upstream_error")
            response = web.Response(status=status, body=payload, content_type="application/json", headers=headers)
        else:
            message, code = f"The upstream answered {status}.", "upstream_error"
            status = 502
            response = openai_error(502, message, code=code, headers=headers)
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        relay = self.relay
        if relay is not None and relay.response is not None:  # keep-alives went out: answer in the stream
            await relay.send_error(message, code=code)
            await relay.end()
            return relay.response
        return response
