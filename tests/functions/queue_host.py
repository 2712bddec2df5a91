"""What the Functions host does for the rotation worker's queue trigger, done in tests: take each visible message of the
work queue, call the registered function with a real `func.QueueMessage`, delete the message when the function returns,
make it visible again when it raises, and after host.json's maxDequeueCount failed deliveries move it to the poison
queue (https://learn.microsoft.com/azure/azure-functions/functions-bindings-storage-queue-trigger#poison-messages).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import azure.functions as func
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.timer import TimerRequest
from azure.storage.queue import TextBase64DecodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from shared.bootstrap import services
from shared.domain.sweep_state import WORK_QUEUE
from tests.functions.conftest import FUNCTIONS

HOST = json.loads((Path(__file__).resolve().parents[2] / "host.json").read_text(encoding="utf-8"))
MAX_DEQUEUE_COUNT = int(HOST["extensions"]["queues"]["maxDequeueCount"])


def _queue(name: str) -> QueueClient:
    connection = services().settings.storage_connection_string
    assert connection, "the work queue lives in Azurite: these tests set AzureWebJobsStorage"
    return QueueClient.from_connection_string(
        connection, name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
    )


async def deliver_work(patience: float = 60) -> int:
    """Deliver the work queue's messages until it is empty (waiting out paced ones); how many the worker completed."""
    completed = 0
    deadline = time.monotonic() + patience
    async with _queue(WORK_QUEUE) as queue, _queue(f"{WORK_QUEUE}-poison") as poison:
        while True:
            try:
                messages = [m async for m in queue.receive_messages(max_messages=32, visibility_timeout=60)]
            except ResourceNotFoundError:
                return completed  # nothing was ever queued
            for message in messages:
                body = func.QueueMessage(
                    id=message.id, body=str(message.content).encode(), pop_receipt=message.pop_receipt
                )
                try:
                    await FUNCTIONS["rotation_worker"](body)
                except Exception:  # noqa: BLE001 - the host catches whatever a function raises
                    if (message.dequeue_count or 1) >= MAX_DEQUEUE_COUNT:
                        try:
                            await poison.send_message(message.content)
                        except ResourceNotFoundError:
                            await poison.create_queue()
                            await poison.send_message(message.content)
                        await queue.delete_message(message)
                    else:
                        await queue.update_message(message, visibility_timeout=0)
                    continue
                await queue.delete_message(message)
                completed += 1
            if not messages:
                if (await queue.get_queue_properties()).approximate_message_count == 0:
                    return completed
                if time.monotonic() > deadline:
                    raise TimeoutError("the work queue did not empty")
                await asyncio.sleep(0.05)


async def sweep_and_work() -> int:
    """One timer invocation of the sweep, then the worker's deliveries of what it queued."""
    await FUNCTIONS["rotation_sweep"](TimerRequest())
    return await deliver_work()
