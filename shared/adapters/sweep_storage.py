"""The bounded sweep's state in the Functions storage account: its checkpoint and due index as blobs, its work items on a
queue. The identity holds Storage Blob Data Owner and Storage Queue Data Contributor there (infra/app/rbac.bicep).

- The checkpoint is one blob, saved only over the version read (If-Match on its ETag; If-None-Match: * when new), so
  two invocations cannot both advance a pass (https://learn.microsoft.com/rest/api/storageservices/put-blob).
- Blobs are named under the deployment's name prefix, so deployments sharing an account keep apart.
- An index entry is an empty blob named `{prefix}/due/{time}/{listing}/{record}`. List Blobs returns names in lexical order
  (https://learn.microsoft.com/rest/api/storageservices/enumerating-blob-resources), and the time sorts as it reads,
  so what has come due is a prefix of the listing: reading it costs one request per 5,000 entries due, whatever the
  size of the fleet.
- Work items go to `rotation-work`, whose queue trigger is the rotation worker. The Functions host expects Base64
  message text by default (the queues extension's `messageEncoding`), and after `maxDequeueCount` (host.json: 3)
  failed deliveries moves a message to `rotation-work-poison`
  (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages).
"""

from __future__ import annotations

import asyncio
import binascii
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from shared.adapters.storage_queues import CONNECT, READ, STORAGE_FAILURES, open_queue, storage_failure
from shared.domain.ports import CheckpointMoved, PoisonedItem
from shared.domain.sweep_state import WORK_QUEUE, Checkpoint, DueEntry, WorkItem

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient, ContainerClient
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger(__name__)
CONTAINER = "tenant-onboarding-sweep"
POISON_QUEUE = f"{WORK_QUEUE}-poison"
TIME_TO_LIVE_SECONDS = 7 * 24 * 3600  # a work item older than a week is stale: the index and the full pass remain
POISON_VISIBILITY_SECONDS = 300  # a poisoned message taken but not yet reported comes back after this
PARALLEL = 16  # index blobs written or deleted at once
# Both clients retry twice, quickly (keywords of the ExponentialRetry each client builds by default): the SDK's
# default backs off 15 s, then 15 + 3^n s, so one call in a Storage brownout could outlast an invocation's budget, or
# hold the HTTP request whose change files an index entry. What still fails is tried again by the next invocation, or
# repaired by the full pass.
SHORT_RETRY: dict[str, Any] = {"initial_backoff": 1, "increment_base": 2, "retry_total": 2}


class StorageSweepStore:
    def __init__(
        self,
        namespace: str,
        *,
        connection_string: str | None = None,
        blob_url: str | None = None,
        queue_url: str | None = None,
        credential: AsyncTokenCredential | None = None,
    ) -> None:
        if not connection_string and not (blob_url and queue_url and credential is not None):
            raise ValueError("the sweep store needs a connection string, or blob and queue URLs and a credential")
        self._connection_string = connection_string
        self._checkpoint_blob = f"{namespace}/checkpoint.json"
        self._index = f"{namespace}/due/"
        self._blob_url, self._queue_url, self._credential = blob_url, queue_url, credential
        self._service: BlobServiceClient | None = None
        self._container: ContainerClient | None = None
        self._queues: dict[str, QueueClient] = {}

    # Clients, made on first use ----------------------------------------------------------------------------------

    async def _blobs(self) -> ContainerClient:
        if self._container is None:
            from azure.storage.blob.aio import BlobServiceClient

            service = (
                BlobServiceClient.from_connection_string(self._connection_string, **SHORT_RETRY)
                if self._connection_string
                else BlobServiceClient(str(self._blob_url), credential=self._credential, **SHORT_RETRY)
            )
            container = service.get_container_client(CONTAINER)
            try:
                await container.create_container(connection_timeout=CONNECT, read_timeout=READ)
            except ResourceExistsError:
                pass
            except STORAGE_FAILURES as error:
                await service.close()
                raise storage_failure(error, "creating the sweep's container") from error
            self._service, self._container = service, container
        return self._container

    async def _queue(self, name: str) -> QueueClient:
        if name not in self._queues:
            from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy

            self._queues[name] = await open_queue(
                name,
                connection_string=self._connection_string,
                account_url=self._queue_url,
                credential=self._credential,
                message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy(),
                **SHORT_RETRY,
            )
        return self._queues[name]

    # The checkpoint ----------------------------------------------------------------------------------------------

    async def checkpoint(self) -> tuple[Checkpoint, str | None]:
        blob = (await self._blobs()).get_blob_client(self._checkpoint_blob)
        try:
            download = await blob.download_blob(connection_timeout=CONNECT, read_timeout=READ)
            data = await download.readall()
        except ResourceNotFoundError:
            return Checkpoint(), None
        except STORAGE_FAILURES as error:
            raise storage_failure(error, "reading the sweep's checkpoint") from error
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = None
        return Checkpoint.from_json(parsed), str(download.properties.etag)

    async def save_checkpoint(self, checkpoint: Checkpoint, etag: str | None) -> str:
        blob = (await self._blobs()).get_blob_client(self._checkpoint_blob)
        data = json.dumps(checkpoint.to_json()).encode()
        conditions: dict[str, Any] = (
            {"overwrite": True, "etag": etag, "match_condition": MatchConditions.IfNotModified}
            if etag is not None
            else {"overwrite": False}
        )
        try:
            saved = await blob.upload_blob(data, connection_timeout=CONNECT, read_timeout=READ, **conditions)
        except (ResourceModifiedError, ResourceExistsError) as error:
            raise CheckpointMoved() from error
        except HttpResponseError as error:
            if error.status_code == 412:  # ConditionNotMet, however the SDK classed it
                raise CheckpointMoved() from error
            raise storage_failure(error, "saving the sweep's checkpoint") from error
        except (ServiceRequestError, ServiceResponseError) as error:
            raise storage_failure(error, "saving the sweep's checkpoint") from error
        return str(saved["etag"])

    # The due index -----------------------------------------------------------------------------------------------

    async def schedule(self, entries: Sequence[DueEntry]) -> None:
        container = await self._blobs()

        async def put(entry: DueEntry) -> None:
            # Made only if missing (If-None-Match: *): an entry that exists is the same entry, and an overwrite would
            # leave a soft-deleted copy behind (the account keeps deleted blobs 7 days, infra/app/storage.bicep).
            with contextlib.suppress(ResourceExistsError, ResourceModifiedError):
                await container.upload_blob(
                    self._index + entry.key, b"", overwrite=False, connection_timeout=CONNECT, read_timeout=READ
                )

        await self._each(entries, put, "filing entries in the due index")

    async def unschedule(self, entries: Sequence[DueEntry]) -> None:
        container = await self._blobs()

        async def remove(entry: DueEntry) -> None:
            with contextlib.suppress(ResourceNotFoundError):  # already gone (another invocation moved it)
                await container.delete_blob(self._index + entry.key, connection_timeout=CONNECT, read_timeout=READ)

        await self._each(entries, remove, "removing entries from the due index")

    async def due(self, until: datetime) -> AsyncIterator[DueEntry]:
        container = await self._blobs()
        try:
            async for blob in container.list_blobs(
                name_starts_with=self._index, results_per_page=5000, connection_timeout=CONNECT, read_timeout=READ
            ):
                entry = DueEntry.from_key(str(blob.name)[len(self._index) :])
                if entry is None:
                    logger.warning("the due index holds a blob this service did not name: ignored")
                    continue
                if entry.at > until:
                    return  # names sort by time: nothing after this one is due
                yield entry
        except STORAGE_FAILURES as error:
            raise storage_failure(error, "reading the due index") from error

    # The work queue ----------------------------------------------------------------------------------------------

    async def enqueue(self, items: Sequence[tuple[WorkItem, float]]) -> None:
        queue = await self._queue(WORK_QUEUE)

        async def send(pair: tuple[WorkItem, float]) -> None:
            item, delay = pair
            await queue.send_message(
                json.dumps(item.to_json()),
                visibility_timeout=int(delay),
                time_to_live=TIME_TO_LIVE_SECONDS,
                connection_timeout=CONNECT,
                read_timeout=READ,
            )

        await self._each(items, send, "queueing rotations")

    async def poisoned(self, limit: int) -> list[PoisonedItem]:
        queue = await self._queue(POISON_QUEUE)
        items: list[PoisonedItem] = []
        try:
            async for message in queue.receive_messages(
                messages_per_page=min(limit, 32),
                max_messages=limit,
                visibility_timeout=POISON_VISIBILITY_SECONDS,
                connection_timeout=CONNECT,
                read_timeout=READ,
            ):
                items.append(PoisonedItem(_work_item(message.content), (message.id, str(message.pop_receipt))))
        except STORAGE_FAILURES as error:
            raise storage_failure(error, "reading the poison queue") from error
        return items

    async def forget_poisoned(self, items: Sequence[PoisonedItem]) -> None:
        queue = await self._queue(POISON_QUEUE)

        async def remove(item: PoisonedItem) -> None:
            with contextlib.suppress(ResourceNotFoundError):
                await queue.delete_message(
                    item.receipt[0], item.receipt[1], connection_timeout=CONNECT, read_timeout=READ
                )

        await self._each(items, remove, "removing reported messages from the poison queue")

    async def close(self) -> None:
        if self._service is not None:
            await self._service.close()
            self._service = self._container = None
        for queue in self._queues.values():
            await queue.close()
        self._queues = {}

    @staticmethod
    async def _each(things: Sequence[Any], action: Any, doing: str) -> None:
        limit = asyncio.Semaphore(PARALLEL)

        async def one(thing: Any) -> None:
            async with limit:
                await action(thing)

        try:
            await asyncio.gather(*(one(thing) for thing in things))
        except STORAGE_FAILURES as error:
            raise storage_failure(error, doing) from error


def _work_item(content: Any) -> WorkItem | None:
    """The work item a poison message holds (decoded from Base64 by the client), None if it holds none."""
    try:
        text = content.decode() if isinstance(content, bytes) else str(content)
        return WorkItem.from_json(json.loads(text))
    except (ValueError, binascii.Error):  # NotAWorkItem and UnicodeDecodeError are ValueErrors
        return None
