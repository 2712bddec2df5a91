"""An in-memory SweepStore: the checkpoint with ETags, the due index in time order, the work queue with visibility delays
and a poison queue, each call counted. Unit tests and the sweep benchmark use it; tests/contract holds it and the
Storage adapter to the same answers."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from shared.domain.ports import CheckpointMoved, PoisonedItem
from shared.domain.sweep_state import Checkpoint, DueEntry, WorkItem


@dataclass
class QueuedItem:
    item: WorkItem
    delay: float
    attempts: int = 0
    queued_at: float = 0.0  # time.monotonic() when queued: visible from queued_at + delay


class MemorySweepStore:
    def __init__(self) -> None:
        self.saved: str | None = None  # the checkpoint as JSON text, as the blob holds it
        self.version = 0
        self.index: set[DueEntry] = set()
        self.queue: list[QueuedItem] = []
        self.poison: list[QueuedItem] = []
        self.calls: Counter[str] = Counter()
        self.fail_save_after: int | None = None  # saves allowed before the next one raises (a killed invocation)

    async def checkpoint(self) -> tuple[Checkpoint, str | None]:
        self.calls["checkpoint"] += 1
        if self.saved is None:
            return Checkpoint(), None
        return Checkpoint.from_json(json.loads(self.saved)), str(self.version)

    async def save_checkpoint(self, checkpoint: Checkpoint, etag: str | None) -> str:
        self.calls["save_checkpoint"] += 1
        if self.fail_save_after is not None:
            if self.fail_save_after == 0:
                raise Killed("the invocation died before this save")
            self.fail_save_after -= 1
        if etag != (str(self.version) if self.saved is not None else None):
            raise CheckpointMoved()
        self.saved = json.dumps(checkpoint.to_json())
        self.version += 1
        return str(self.version)

    async def schedule(self, entries: Sequence[DueEntry]) -> None:
        self.calls["schedule"] += len(entries)
        self.index.update(entries)

    async def due(self, until: datetime) -> AsyncIterator[DueEntry]:
        self.calls["due"] += 1
        for entry in sorted(self.index):
            if entry.at > until:
                return
            yield entry

    async def unschedule(self, entries: Sequence[DueEntry]) -> None:
        self.calls["unschedule"] += len(entries)
        self.index.difference_update(entries)

    async def enqueue(self, items: Sequence[tuple[WorkItem, float]]) -> None:
        self.calls["enqueue"] += len(items)
        now = time.monotonic()
        self.queue += [QueuedItem(item, delay, queued_at=now) for item, delay in items]

    async def poisoned(self, limit: int) -> list[PoisonedItem]:
        self.calls["poisoned"] += 1
        return [PoisonedItem(q.item, (str(i), "receipt")) for i, q in enumerate(self.poison[:limit])]

    async def forget_poisoned(self, items: Sequence[PoisonedItem]) -> None:
        taken = {int(item.receipt[0]) for item in items}
        self.poison = [q for i, q in enumerate(self.poison) if i not in taken]

    def take_work(self) -> list[QueuedItem]:
        """Everything queued so far, removed (the tests' and the benchmark's worker)."""
        taken, self.queue = self.queue, []
        return taken


class Killed(BaseException):
    """What a test raises to stand for SIGKILL: a BaseException, so no `except Exception` in the product catches it."""
