"""Retrying with intent: replication polled tightly but boundedly, throttling paced by the service."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from shared.domain.ports import NotReplicatedYet, Throttled
from shared.domain.retry import THROTTLED_WITHOUT_RETRY_AFTER_SECONDS, Backoff, RetryDeadline, retry
from shared.usecases.replication import throttle_hint


class InstantClock:
    """Time that moves only by the sleeps of the code under test."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def replicated_after(clock: InstantClock, lag: float) -> Callable[[], Awaitable[float]]:
    async def operation() -> float:
        if clock.now < lag:
            raise NotReplicatedYet("the app registration")
        return clock.now

    return operation


def replication(error: Exception) -> float | None:
    return 0.0 if isinstance(error, NotReplicatedYet) else throttle_hint(error)


@pytest.mark.parametrize("lag", [0.02, 0.3, 1.0, 4.0, 18.0, 45.0])
async def test_a_replication_lag_is_overshot_by_at_most_a_tenth_of_it_or_one_short_poll(lag: float) -> None:
    clock = InstantClock()
    jitter = 1 + Backoff().jitter

    done = await retry(
        replicated_after(clock, lag),
        what="app registration",
        retry_after=replication,
        deadline_seconds=60,
        clock=clock,
    )

    assert lag <= done <= lag + max(Backoff().minimum, Backoff().fraction * lag) * jitter


async def test_a_minute_of_polling_asks_fewer_than_eighty_times() -> None:
    clock = InstantClock()

    with pytest.raises(RetryDeadline):
        await retry(
            replicated_after(clock, 3600),
            what="app registration",
            retry_after=replication,
            deadline_seconds=60,
            clock=clock,
        )

    assert len(clock.sleeps) < 80
    assert max(clock.sleeps) <= Backoff().maximum * (1 + Backoff().jitter)


async def test_throttling_waits_the_retry_after_the_service_asked_for() -> None:
    clock = InstantClock()
    answers: list[Exception | None] = [Throttled("graph", 7), None]

    async def operation() -> str:
        error = answers.pop(0)
        if error is not None:
            raise error
        return "done"

    assert await retry(operation, what="x", retry_after=replication, deadline_seconds=60, clock=clock) == "done"
    assert clock.sleeps == [7]


async def test_throttling_without_retry_after_backs_off_a_second_not_at_replication_pace() -> None:
    assert throttle_hint(Throttled("graph", None)) == THROTTLED_WITHOUT_RETRY_AFTER_SECONDS == 1.0
    assert throttle_hint(NotReplicatedYet("the app registration")) is None
