"""Waiting out Entra's replication lag and Graph's throttling within a deadline, then handing back to the caller.

Entra is eventually consistent: an object just written can be missing from the next read for
seconds to minutes ("Designing for Eventual Consistency for Microsoft Entra",
https://devblogs.microsoft.com/identity/designing-for-eventual-consistency-for-microsoft-entra/). A step waits for it up
to a deadline; past that it raises StillReplicating, which onboarding answers with 202 and rotation
reports as pending, and the next call continues where this one stopped.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

from shared.domain.ports import NotReplicatedYet, Throttled
from shared.domain.retry import THROTTLED_WITHOUT_RETRY_AFTER_SECONDS, Clock, RetryDeadline, retry

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
PENDING_RETRY_AFTER_SECONDS = 5


class StillReplicating(Exception):
    """A step ran out of time waiting for Entra: replication lag, or throttling longer than we wait."""

    def __init__(self, step: str, deadline: RetryDeadline) -> None:
        super().__init__(step)
        self.step = step
        throttle = deadline.last if isinstance(deadline.last, Throttled) else None
        self.throttled = throttle is not None
        self.retry_after = max(PENDING_RETRY_AFTER_SECONDS, math.ceil(throttle.retry_after or 0) if throttle else 0)

    @property
    def reason(self) -> str:
        if self.throttled:
            return f"Graph is throttling the {self.step} step; repeat the same request after Retry-After."
        return f"Entra has not finished replicating the {self.step}; repeat the same request."


async def within_replication(
    what: str, operation: Callable[[], Awaitable[T]], *, deadline_seconds: float, clock: Clock
) -> T:
    """Run a Graph step, waiting out replication lag (and throttling) for up to `deadline_seconds`;
    StillReplicating after that, for the caller to answer 202 or report the rotation pending."""
    try:
        return await retry(
            operation,
            what=what,
            retry_after=lambda error: 0.0 if isinstance(error, NotReplicatedYet) else throttle_hint(error),
            deadline_seconds=deadline_seconds,
            clock=clock,
        )
    except RetryDeadline as deadline:
        raise StillReplicating(what, deadline) from deadline


def throttle_hint(error: Exception) -> float | None:
    if isinstance(error, Throttled):
        return error.retry_after or THROTTLED_WITHOUT_RETRY_AFTER_SECONDS
    return None


@overload
async def together(a: Awaitable[A], b: Awaitable[B], /) -> tuple[A, B]: ...


@overload
async def together(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], /) -> tuple[A, B, C]: ...


@overload
async def together(a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], d: Awaitable[D], /) -> tuple[A, B, C, D]: ...


@overload
async def together(
    a: Awaitable[A], b: Awaitable[B], c: Awaitable[C], d: Awaitable[D], e: Awaitable[E], /
) -> tuple[A, B, C, D, E]: ...


async def together(*steps: Awaitable[Any]) -> tuple[Any, ...]:
    """Run independent steps at once, wait for every one of them, then raise the first failure.

    None is cancelled when another fails: an addPassword cut off in flight could mint a secret
    whose text nobody receives. A definite error wins over StillReplicating, which only asks the
    caller to come back and would hide it.
    """
    results = await asyncio.gather(*steps, return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        raise next((f for f in failures if not isinstance(f, StillReplicating)), failures[0])
    return tuple(results)
