"""What the adapters on the Functions storage account share: a queue opened (and made) on first use, per-call
timeouts, and Storage's failures as the product's errors. The event outbox (outbox.py) and the sweep's store
(sweep_storage.py) use it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError

from shared.domain.errors import UpstreamError, UpstreamUnavailable

if TYPE_CHECKING:
    from azure.storage.queue.aio import QueueClient

logger = logging.getLogger(__name__)
STORAGE_FAILURES = (HttpResponseError, ServiceRequestError, ServiceResponseError)
# Per call (azure-core's transport options): a slow Storage never holds the invocation or request that called it long.
CONNECT, READ = 3, 10
UNAVAILABLE = (408, 429, 500, 502, 503, 504)  # and no answer at all: may succeed later


async def open_queue(
    name: str,
    *,
    connection_string: str | None,
    account_url: str | None,
    credential: AsyncTokenCredential | None,
    **policies: Any,
) -> QueueClient:
    """The queue `name` of the account, made if it does not exist yet."""
    from azure.storage.queue.aio import QueueClient

    queue = (
        QueueClient.from_connection_string(connection_string, name, **policies)
        if connection_string
        else QueueClient(str(account_url), name, credential=credential, **policies)
    )
    try:
        await queue.create_queue(connection_timeout=CONNECT, read_timeout=READ)
    except ResourceExistsError:
        pass
    except STORAGE_FAILURES as error:
        await queue.close()
        raise storage_failure(error, f"creating the queue {name}") from error
    return queue


def storage_failure(error: Any, doing: str) -> UpstreamError:
    """UpstreamUnavailable when Storage may take it later (no answer, 408, 429, 5xx), else UpstreamError."""
    status = getattr(error, "status_code", None)
    logger.info("Storage answered %s while %s: %s", status, doing, type(error).__name__)
    if status is None or status in UNAVAILABLE:
        return UpstreamUnavailable(f"Storage did not answer while {doing}", "storage", status, type(error).__name__)
    return UpstreamError(f"Storage failed while {doing}", "storage", status, type(error).__name__)
