"""The sweep's store, the same answers from both implementations: the in-memory one unit tests and the benchmark use
(tests/fakes/sweep_store.py) and the Storage adapter (shared/adapters/sweep_storage.py) on Azurite's blob and queue
services: the checkpoint's compare-and-set, the due index's time order, and the poison queue as the host leaves it."""

from __future__ import annotations

import base64
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.adapters.sweep_storage import POISON_QUEUE, StorageSweepStore
from shared.domain.model import Listing
from shared.domain.ports import CheckpointMoved, SweepStore
from shared.domain.sweep_state import Checkpoint, DueEntry, FullPass, WorkItem
from tests.azurite import Azurite
from tests.fakes.sweep_store import MemorySweepStore, QueuedItem

NOW = datetime(2026, 12, 5, 12, tzinfo=UTC)
ITEM = WorkItem("5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10", "sentinel", Listing.SECRETS, "p-x-client-secret", "due")


@pytest.fixture(params=["memory", "azurite"])
async def store(request: pytest.FixtureRequest, azurite: Azurite) -> AsyncIterator[SweepStore]:
    if request.param == "memory":
        yield MemorySweepStore()
        return
    adapter = StorageSweepStore(f"c{uuid.uuid4().hex[:8]}", connection_string=azurite.connection_string)
    try:
        yield adapter
    finally:
        await adapter.close()


async def poison(store: SweepStore, azurite: Azurite, contents: list[str]) -> None:
    """Messages in the poison queue, as the Functions host moves them there (the original Base64 text)."""
    if isinstance(store, MemorySweepStore):
        for content in contents:
            try:
                store.poison.append(QueuedItem(WorkItem.from_json(json.loads(content)), 0))
            except ValueError:
                store.poison.append(QueuedItem(None, 0))  # type: ignore[arg-type]
        return
    async with QueueClient.from_connection_string(
        azurite.connection_string, POISON_QUEUE, message_encode_policy=TextBase64EncodePolicy()
    ) as queue:
        with contextlib.suppress(ResourceExistsError):
            await queue.create_queue()  # the host makes it when it first poisons a message
        for content in contents:
            await queue.send_message(content)


async def test_a_checkpoint_is_saved_only_over_the_version_read(store: SweepStore) -> None:
    fresh, etag = await store.checkpoint()
    assert fresh == Checkpoint() and etag is None
    saved = Checkpoint(FullPass("p", NOW, Listing.CERTIFICATES, "https://v/certificates?x", pages=2), NOW, None, 0, 9)
    first = await store.save_checkpoint(saved, None)
    with pytest.raises(CheckpointMoved):
        await store.save_checkpoint(saved, None)  # someone saved one first
    read, etag = await store.checkpoint()
    assert read == saved and etag == first
    second = await store.save_checkpoint(Checkpoint(last_completed_at=NOW), etag)
    with pytest.raises(CheckpointMoved):
        await store.save_checkpoint(saved, first)  # saved over since it was read
    assert (await store.checkpoint())[1] == second


async def test_the_due_index_gives_what_has_come_due_earliest_first(store: SweepStore) -> None:
    entries = [
        DueEntry(NOW + timedelta(minutes=m), listing, f"r{m}")
        for m, listing in (
            (5, Listing.SECRETS),
            (-60, Listing.CERTIFICATES),
            (0, Listing.SECRETS),
            (90, Listing.SECRETS),
        )
    ]
    await store.schedule(entries)
    await store.schedule(entries[:1])  # filed twice: one entry
    assert [e.name async for e in store.due(NOW + timedelta(minutes=5))] == ["r-60", "r0", "r5"]
    await store.unschedule([entries[1], DueEntry(NOW, Listing.SECRETS, "never-filed")])
    assert [e async for e in store.due(NOW + timedelta(days=1))] == sorted([entries[0], entries[2], entries[3]])


async def test_the_poison_queue_is_read_as_work_items_and_forgotten_once_reported(
    store: SweepStore, azurite: Azurite
) -> None:
    await poison(store, azurite, [json.dumps(ITEM.to_json()), "not a work item"])
    taken = await store.poisoned(32)  # (Azurite's queues are the session's: another test may have left some)
    assert [p.item for p in taken if p.item == ITEM] == [ITEM] and any(p.item is None for p in taken)
    await store.forget_poisoned(taken)
    assert await store.poisoned(32) == []


async def test_work_items_are_queued_as_the_functions_host_reads_them(store: SweepStore, azurite: Azurite) -> None:
    """Base64 text of the work item's JSON (the queues extension's default messageEncoding), hidden for its delay."""
    await store.enqueue([(ITEM, 0), (ITEM, 3600)])
    if isinstance(store, MemorySweepStore):
        assert [(q.item, q.delay) for q in store.queue] == [(ITEM, 0), (ITEM, 3600)]
        return
    async with QueueClient.from_connection_string(azurite.connection_string, "rotation-work") as queue:
        visible: list[Any] = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=1)]
        ours = [m for m in visible if WorkItem.from_json(json.loads(base64.b64decode(m.content))) == ITEM]
        assert len(ours) == 1, "the delayed one stays hidden"
        await queue.clear_messages()
