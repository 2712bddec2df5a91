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
# How long to back off when a service throttles without saying how long (no Retry-After): polling
# it at replication pace would only spend the budget it is protecting.
THROTTLED_WITHOUT_RETRY_AFTER_SECONDS = 1.0


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
    """How long to wait before asking again: a tenth of the time already spent waiting, within bounds.

    Replication ends at a moment nobody announces, so every poll can overshoot it by one interval.
    An interval proportional to the wait so far bounds that overshoot to `fraction` of the lag
    (the earlier 0.1 s growing by 1.6 per attempt could overshoot a 3 s lag by 1.7 s), while the
    number of polls grows only with the logarithm of the wait: about 70 in a minute. Throttling is
    not paced by this: it waits what the service asks (`Retry-After`), or a second.
    """

    minimum: float = 0.05
    fraction: float = 0.1
    maximum: float = 2.0
    jitter: float = 0.2

    def delay(self, waited: float) -> float:
        base = min(self.maximum, max(self.minimum, self.fraction * waited))
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
    while True:
        try:
            return await operation()
        except Exception as error:
            hint = retry_after(error)
            if hint is None:
                raise
            waited = clock.monotonic() - started
            delay = hint if hint > 0 else backoff.delay(waited)
            if waited + delay > deadline_seconds:
                raise RetryDeadline(what, error) from error
            logger.debug("retrying %s in %.2f s after %s", what, delay, type(error).__name__)
            await clock.sleep(delay)
