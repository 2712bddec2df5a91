"""Retrying with intent: on a predicate, with bounded time, honouring Retry-After, instant in tests.

A retry here means "the service told us to wait" (429, Retry-After) or "Entra has not replicated
yet" (a read right after a write). Anything else is raised at once: retrying a bug only hides it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

T = TypeVar("T")
logger = logging.getLogger(__name__)


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter. Short first steps: replication usually settles in seconds."""

    initial: float = 0.1
    maximum: float = 2.0
    multiplier: float = 1.6
    jitter: float = 0.2

    def delay(self, attempt: int) -> float:
        base = min(self.maximum, self.initial * self.multiplier**attempt)
        return base * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - jitter, not crypto


class RetryDeadline(Exception):
    """The operation was still failing retryably when its time ran out; `last` says why."""

    def __init__(self, what: str, last: BaseException) -> None:
        super().__init__(f"{what}: still not done when the deadline passed ({type(last).__name__})")
        self.what = what
        self.last = last


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    retry_after: Callable[[Exception], float | None],
    deadline_seconds: float,
    clock: Clock,
    backoff: Backoff = Backoff(),
) -> T:
    """Run `operation` until it succeeds, `retry_after` returns None for its error, or time runs out.

    `retry_after(error)` returns None to give up at once, 0 to wait the backoff, or a positive
    number of seconds the service asked for.
    """
    started = clock.monotonic()
    attempt = 0
    while True:
        try:
            return await operation()
        except Exception as error:
            hint = retry_after(error)
            if hint is None:
                raise
            delay = hint if hint > 0 else backoff.delay(attempt)
            if clock.monotonic() - started + delay > deadline_seconds:
                raise RetryDeadline(what, error) from error
            logger.debug("retrying %s in %.2f s after %s", what, delay, type(error).__name__)
            await clock.sleep(delay)
            attempt += 1
