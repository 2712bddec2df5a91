"""`FakeClock`: the virtual clock the use cases sleep on and read the wall time from in unit tests.

Nothing sleeps for real: `FakeClock.sleep` waits on a virtual clock (concurrent sleeps overlap, as on a
real one), and `FakeClock.now` (the wall clock the use case and the directory see) moves with it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import datetime, timedelta

from tests.fakes.ids import START


class FakeClock:
    """Monotonic time and wall time that move only when told to, or when the code under test sleeps.

    Sleeps are virtual, and tasks that sleep at the same time sleep side by side, as they would on
    a real clock: a sleeper wakes when every runnable task has run as far as it can and its wake-up
    is the earliest due, and time jumps to it. Two branches that each wait out 10 s of replication
    concurrently take 10 s, not 20.
    """

    RUNNABLE_STEPS = 100  # loop turns a pending wake-up waits for runnable tasks to block

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.elapsed + max(0.0, seconds), next(self._order), woken))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._wake_in_order())
        await woken

    async def _wake_in_order(self) -> None:
        while self._sleepers:
            for _ in range(self.RUNNABLE_STEPS):
                await asyncio.sleep(0)
            due, _, woken = heapq.heappop(self._sleepers)
            self.elapsed = max(self.elapsed, due)
            if not woken.done():
                woken.set_result(None)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def advance(self, *, seconds: float = 0.0, minutes: float = 0.0, days: float = 0.0) -> None:
        self.elapsed += seconds + 60 * minutes + 86400 * days

    @property
    def slept(self) -> float:
        return sum(self.sleeps)
