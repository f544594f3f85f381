"""Cutting a stream whose token budget runs out mid-way (a route's ``cut_stream_on_budget``).

A stream is admitted on a reservation: its prompt estimate + ``max_tokens`` (or
``GATEWAY_LLM_RESERVE_MAX_TOKENS``). Where the route asks for it, the relay counts each
content delta's tokens (tiktoken, per chunk: a slight over-count at chunk boundaries,
which errs on the budget's side) before sending it. When the prompt and the streamed
tokens would pass what is reserved, ``StreamBudget`` reserves a further increment (its
tokens and their estimated cost) under the same scope and budgets; if the limiter refuses,
the delta is not sent and the stream ends with an ``insufficient_quota`` error event.

At the end the reservations (the first and every increment) are settled together to the
actual usage, each charged its share in order: a reservation's windows take at most what
it reserved, the last one takes the rest (see ``settle_reservations``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway_sync.contract.schema import ModelOffering
from gateway_sync.worker.llm_usage import Tokenizer, cost_microusd
from gateway_sync.worker.token_limits import Reservation, TokenBudget, TokenLimiter

BUDGET_CUT = "budget_cut"  # the record's note (in guardrail_actions) of a cut stream


class StreamBudget:
    """The token budget of one streamed answer, topped up as the answer grows."""

    def __init__(
        self,
        limiter: TokenLimiter,
        tokenizer: Tokenizer,
        *,
        reservation: Reservation,
        budgets: Sequence[TokenBudget],
        offering: ModelOffering,
        prompt_tokens: int,
        increment: int,
    ) -> None:
        self.limiter = limiter
        self.tokenizer = tokenizer
        self.budgets = tuple(budgets)
        self.offering = offering
        self.prompt_tokens = prompt_tokens
        self.increment = increment
        self.reservations: list[Reservation] = [reservation]
        self.covered = reservation.tokens
        self.streamed = 0
        self.cut = False

    async def admit(self, text: str) -> bool:
        """Count ``text``, a delta about to be sent. True: the reservations cover it (after
        topping them up if needed); False: the limiter refused a top-up, so the stream
        must end before this delta (and ``cut`` is set)."""
        if self.cut:
            return False
        tokens = self.tokenizer.count(text)
        needed = self.prompt_tokens + self.streamed + tokens
        while needed > self.covered:
            more = await self.limiter.reserve(
                scope=self.reservations[0].scope,
                budgets=self.budgets,
                tokens=self.increment,
                microusd=cost_microusd(self.offering, 0, self.increment),
            )
            if not more.allowed:
                self.cut = True
                return False
            self.reservations.append(more)
            self.covered += more.tokens
        self.streamed += tokens
        return True


def _shares(total: int, caps: Sequence[int]) -> list[int]:
    """``total`` split over reservations in order, each up to its cap, the last one taking
    whatever is left (more than its cap when the usage outran every reservation)."""
    shares = []
    for cap in caps[:-1]:
        share = min(total, cap)
        shares.append(share)
        total -= share
    shares.append(total)
    return shares


async def settle_reservations(
    limiter: TokenLimiter, reservations: Sequence[Reservation], *, tokens: int, microusd: int
) -> None:
    """Settle a stream's reservations to its actual usage (one reservation: plain settle)."""
    token_shares = _shares(tokens, [r.tokens for r in reservations])
    cost_shares = _shares(microusd, [r.microusd for r in reservations])
    for reservation, token_share, cost_share in zip(reservations, token_shares, cost_shares, strict=True):
        await limiter.settle(reservation, tokens=token_share, microusd=cost_share)


async def release_reservations(limiter: TokenLimiter, reservations: Sequence[Reservation]) -> None:
    for reservation in reservations:
        await limiter.release(reservation)
