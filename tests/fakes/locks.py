"""`CountingLocks`: the process-local `Locks` implementation, counting holders and contention for tests."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

from shared.adapters.locks import ProcessLocks


class CountingLocks:
    """`shared.adapters.locks.ProcessLocks`, counting its holders: rotations in flight, and calls that had to wait."""

    def __init__(self) -> None:
        self.inner = ProcessLocks()
        self.in_flight = 0
        self.max_in_flight = 0
        self.entered = 0  # calls of hold(), held or refused
        self.contended = 0  # calls that found another caller holding, or waiting for, the same key
        self.on_enter: Callable[[str], None] | None = None  # called as hold() is entered, before any wait
        self._callers: Counter[str] = Counter()  # by key: callers inside hold(), waiting or holding

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait_seconds: float) -> AsyncIterator[None]:
        self.entered += 1
        self.contended += self._callers[key] > 0
        if self.on_enter is not None:
            self.on_enter(key)
        self._callers[key] += 1
        try:
            async with self.inner.hold(key, wait_seconds):
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    yield
                finally:
                    self.in_flight -= 1
        finally:
            self._callers[key] -= 1
