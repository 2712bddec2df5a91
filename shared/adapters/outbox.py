"""The event outbox: a queue in the Functions storage account (azure-storage-queue), where events wait while Event
Grid is unavailable. The identity holds Storage Queue Data Contributor on that account (infra/app/rbac.bicep).

A taken message stays hidden for VISIBILITY_SECONDS and comes back unless deleted, so an invocation that dies after
taking events loses none (https://learn.microsoft.com/azure/storage/queues/storage-queues-introduction).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ResourceNotFoundError,
)

from shared.adapters.storage_queues import CONNECT, READ, STORAGE_FAILURES, open_queue, storage_failure
from shared.domain.events import Event
from shared.domain.ports import OutboxItem

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger(__name__)
QUEUE = "tenant-onboarding-events"
VISIBILITY_SECONDS = 300  # long enough to publish a batch, short enough that a crash delays little
TIME_TO_LIVE_SECONDS = 7 * 24 * 3600  # a week: past it an event is stale news, and the queue never fills up


class QueueOutbox:
    def __init__(
        self,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        credential: AsyncTokenCredential | None = None,
    ) -> None:
        if not connection_string and not (account_url and credential is not None):
            raise ValueError("the outbox needs a connection string, or an account URL and a credential")
        self._connection_string = connection_string
        self._account_url = account_url
        self._credential = credential
        self._queue: QueueClient | None = None

    async def _client(self) -> QueueClient:
        if self._queue is None:
            self._queue = await open_queue(
                QUEUE,
                connection_string=self._connection_string,
                account_url=self._account_url,
                credential=self._credential,
            )
        return self._queue

    async def put(self, events: Sequence[Event]) -> None:
        queue = await self._client()
        try:
            for event in events:
                await queue.send_message(
                    json.dumps(event.to_json()),
                    time_to_live=TIME_TO_LIVE_SECONDS,
                    connection_timeout=CONNECT,
                    read_timeout=READ,
                )
        except STORAGE_FAILURES as error:
            raise storage_failure(error, "keeping events in the outbox") from error

    async def take(self, limit: int) -> list[OutboxItem]:
        queue = await self._client()
        items: list[OutboxItem] = []
        try:
            async for message in queue.receive_messages(
                messages_per_page=min(limit, 32),
                visibility_timeout=VISIBILITY_SECONDS,
                max_messages=limit,
                connection_timeout=CONNECT,
                read_timeout=READ,
            ):
                try:
                    event = Event.from_json(json.loads(message.content))
                except (ValueError, KeyError, TypeError):
                    logger.error("the event outbox held a message that is not an event: %s dropped", message.id)
                    await queue.delete_message(
                        message.id, message.pop_receipt, connection_timeout=CONNECT, read_timeout=READ
                    )
                    continue
                items.append(OutboxItem(event, (message.id, str(message.pop_receipt)), int(message.dequeue_count or 1)))
        except STORAGE_FAILURES as error:
            raise storage_failure(error, "reading the event outbox") from error
        return items

    async def done(self, items: Sequence[OutboxItem]) -> None:
        queue = await self._client()
        for item in items:
            try:
                await queue.delete_message(
                    item.receipt[0], item.receipt[1], connection_timeout=CONNECT, read_timeout=READ
                )
            except ResourceNotFoundError:
                continue  # already gone (another invocation's delete, or its time to live)
            except STORAGE_FAILURES as error:
                raise storage_failure(error, "removing sent events from the outbox") from error

    async def close(self) -> None:
        if self._queue is not None:
            await self._queue.close()
            self._queue = None
