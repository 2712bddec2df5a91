"""Delivering events to the vendor's backend: what an invocation changed, published to the Event Grid topic when it
ends, kept in an outbox when the topic is unavailable, and sent from there later, so a brief outage neither fails the
change nor loses its event (at least once; each event keeps its id, so a consumer can drop a repeat).

Delivery never fails or undoes the change it reports: a publish that fails puts the events in the outbox; an outbox
that fails too is logged at ERROR with the events' ids and types. An invocation whose publish succeeds then sends one
batch of what the outbox holds, and every timer run sends up to eight.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from shared.domain.audit import collecting
from shared.domain.errors import OnboardingError, UpstreamUnavailable
from shared.domain.events import Event, from_audit
from shared.domain.ports import EventOutbox, EventPublisher, OutboxItem

logger = logging.getLogger(__name__)
DRAIN_BATCH = 32  # events a drain takes at a time (Event Grid takes up to 1 MB a request; ours are ~1 KB)
DRAIN_BATCHES = 8  # batches a timer run's drain sends at most: the rest waits for the next run
PUBLISH_BATCH = 100  # events a publish carries at most (~100 KB: well under Event Grid's 1 MB a request)
MAX_ATTEMPTS = 20  # an event the topic keeps refusing is dropped (logged) after this many tries


class EventDelivery:
    def __init__(
        self,
        publisher: EventPublisher | None,
        outbox: EventOutbox | None,
        source: str,
        now: Callable[[], datetime],
    ) -> None:
        self.publisher = publisher  # None: no topic configured, nothing is published
        self.outbox = outbox
        self.source = source
        self.now = now

    @contextlib.asynccontextmanager
    async def delivering(self) -> AsyncIterator[None]:
        """Publish, when the block ends (normally or not), the events its audit events make."""
        with collecting() as audited:
            try:
                yield
            finally:
                events = [e for a in audited if (e := from_audit(a, self.source, self.now())) is not None]
                await self.deliver(events)

    async def deliver(self, events: Sequence[Event]) -> None:
        if self.publisher is None or not events:
            return
        published = True
        for start in range(0, len(events), PUBLISH_BATCH):
            batch = events[start : start + PUBLISH_BATCH]
            try:
                await self.publisher.publish(batch)
            except OnboardingError as error:
                logger.warning("Event Grid did not take %d events (%s): kept for later", len(batch), error.problem_type)
                await self._keep(batch)
                published = False
        if published:
            await self.drain(batches=1)  # the topic answers: send some of what an outage left, the timer the rest

    async def drain(self, batches: int = DRAIN_BATCHES) -> int:
        """Send what the outbox holds, up to `batches` batches; how many events went."""
        if self.publisher is None or self.outbox is None:
            return 0
        sent = 0
        for _ in range(batches):
            try:
                items = await self.outbox.take(DRAIN_BATCH)
            except OnboardingError as error:
                logger.warning("the event outbox could not be read (%s)", error.problem_type)
                return sent
            if not items:
                return sent
            try:
                await self.publisher.publish([item.event for item in items])
            except UpstreamUnavailable:
                return sent  # still down: they reappear in the outbox after their hiding time
            except OnboardingError:
                # Refused as a batch: each alone, so one bad event cannot take the good ones down with it.
                sent += await self._one_by_one(items)
                continue
            await self._done(items)
            sent += len(items)
        return sent

    async def _one_by_one(self, items: Sequence[OutboxItem]) -> int:
        assert self.publisher is not None
        sent = 0
        for item in items:
            try:
                await self.publisher.publish([item.event])
            except UpstreamUnavailable:
                continue  # back after its hiding time
            except OnboardingError as error:
                if item.attempts >= MAX_ATTEMPTS:  # refused alone, again and again: dropped, loudly
                    logger.error("event %s (%s) dropped after %d attempts: %s", item.event.id, item.event.type,
                                 item.attempts, error.problem_type)  # fmt: skip
                    await self._done([item])
                continue
            await self._done([item])
            sent += 1
        return sent

    async def _keep(self, events: Sequence[Event]) -> None:
        if self.outbox is None:
            logger.error("events lost (no outbox): %s", _named(events))
            return
        try:
            await self.outbox.put(events)
        except OnboardingError as error:
            logger.error("events lost (the outbox failed too: %s): %s", error.problem_type, _named(events))

    async def _done(self, items: Sequence[OutboxItem]) -> None:
        if not items or self.outbox is None:
            return
        try:
            await self.outbox.done(items)
        except OnboardingError as error:  # they come back after their hiding time and are sent again, same ids
            logger.warning("sent events stay in the outbox (%s): they will be sent again", error.problem_type)


def _named(events: Sequence[Event]) -> str:
    return ", ".join(f"{e.id} {e.type} {e.subject}" for e in events)
