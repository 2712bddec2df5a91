"""One writer per registration: blob leases in the Functions storage account, or a process lock locally.

Onboarding, rotation (timer, Key Vault event, on-demand) and offboarding of the same
tenant+integration may run at once, on different instances. Without a lock, two of them can
both find "no secret stored" and each mint one. A blob lease is the compare-and-set Azure
Storage offers every Functions app for free (the host uses the same mechanism for its own
singleton locks): acquiring a lease on `locks/{tenant}/{integration}` succeeds for exactly one
caller; the lease expires by itself if its holder dies, so a crash never wedges a registration.

The lease is asked for first and the lock blob made only when Storage says there is none, so a
lock costs one request once its blob exists, and the answers that decide anything come from Lease
Blob, whose contention answer (409 LeaseAlreadyPresent) Azurite and Azure Storage agree on.
Put Blob over another caller's lease is where they differ (Azure/Azurite#2637): Storage answers
412 LeaseIdMissing, Azurite 409 BlobAlreadyExists; either means "it exists", and the acquire that
follows says who holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient, BlobServiceClient, ContainerClient

from shared.adapters.azure_core_errors import request_ids
from shared.domain.errors import RegistrationBusy, UpstreamUnavailable, request_ids_text

logger = logging.getLogger(__name__)
CONTAINER = "tenant-onboarding-locks"
# Leases last 15-60 s (or forever); 60 s bounds how long a dead holder blocks others, and a
# background renewal keeps a live holder's lease for as long as its work takes.
LEASE_SECONDS = 60
RENEW_EVERY_SECONDS = 20

# Storage's answers, by status and error code (x-ms-error-code), never by message text.
# https://learn.microsoft.com/rest/api/storageservices/blob-service-error-codes
# https://learn.microsoft.com/rest/api/storageservices/lease-blob
NO_BLOB = (404, "BlobNotFound")  # Lease Blob on a blob that does not exist yet
HELD = {
    (409, "LeaseAlreadyPresent"),  # Lease Blob (acquire) while another caller's lease is active
    (409, "LeaseIsBreakingAndCannotBeAcquired"),  # ... or while one is being broken
}
ALREADY_MADE = {
    (409, "BlobAlreadyExists"),  # Put Blob, If-None-Match: * on a blob that exists
    # azure-storage-blob turns a 412 ConditionNotMet on an overwrite=False upload into BlobAlreadyExists
    # (_convert_mod_error in https://github.com/Azure/azure-sdk-for-python/blob/main/sdk/storage/
    # azure-storage-blob/azure/storage/blob/_upload_helpers.py); both forms are listed.
    (412, "BlobAlreadyExists"),
    (412, "ConditionNotMet"),
    (412, "LeaseIdMissing"),  # ... on a blob that exists and another caller leases (Azure/Azurite#2637)
}


class ProcessLocks:
    """For one process (the local CLI against the stand-in, unit tests): asyncio locks by key."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait_seconds: float) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), timeout=max(wait_seconds, 0.001))
        except TimeoutError:
            # from None: no Azure service was asked (an in-process lock), so there is no cause worth keeping.
            raise RegistrationBusy("Another operation on this registration is in progress.", lock=key) from None
        try:
            yield
        finally:
            lock.release()


def _answer(error: HttpResponseError) -> tuple[int | None, str | None]:
    """(HTTP status, Storage error code) of a failed Storage request."""
    code = getattr(error, "error_code", None) or _header(error, "x-ms-error-code")  # the SDK sets error_code
    return error.status_code, None if code is None else str(getattr(code, "value", code))  # a str enum, or a str


def _header(error: HttpResponseError, name: str) -> str | None:
    value = getattr(error.response, "headers", {}).get(name)
    return None if value is None else str(value)


class BlobLeaseLocks:
    def __init__(
        self,
        account_url: str | None = None,
        credential: AsyncTokenCredential | None = None,
        connection_string: str | None = None,
    ) -> None:
        if connection_string:
            self._service = BlobServiceClient.from_connection_string(connection_string)
        elif account_url and credential is not None:
            self._service = BlobServiceClient(account_url, credential=credential)
        else:
            raise ValueError("blob locks need a connection string, or an account URL and a credential")
        self._container: ContainerClient | None = None

    async def _ensure_container(self) -> ContainerClient:
        if self._container is None:
            container = self._service.get_container_client(CONTAINER)
            with contextlib.suppress(ResourceExistsError):
                await container.create_container()
            self._container = container
        return self._container

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait_seconds: float) -> AsyncIterator[None]:
        try:
            container = await self._ensure_container()
            lease = await self._acquire(container.get_blob_client(f"{key}.lock"), key, wait_seconds)
        except (ServiceRequestError, ServiceResponseError) as error:
            logger.info("Storage did not answer while taking the lock on %s: %s", key, type(error).__name__)
            raise UpstreamUnavailable(
                "Storage did not answer while taking a lock", "storage", None, type(error).__name__
            ) from error
        except HttpResponseError as error:
            status, code = _answer(error)
            ids = request_ids(error)
            logger.info(
                "Storage answered %s %s while taking the lock on %s (%s)", status, code, key, request_ids_text(ids)
            )
            raise UpstreamUnavailable(
                "Storage refused the lock", "storage", status, code, upstream_request_ids=ids
            ) from error
        renewal = asyncio.create_task(self._keep(lease, key))
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            try:
                await lease.release()
            except HttpResponseError as error:
                # It expires by itself within LEASE_SECONDS; nothing is lost but a little time.
                status, code = _answer(error)
                logger.warning(
                    "could not release the lock on %s (%s %s, %s); it will expire",
                    key, status, code, request_ids_text(request_ids(error)),
                )  # fmt: skip
            except (ServiceRequestError, ServiceResponseError) as error:
                logger.warning("could not release the lock on %s (%s); it will expire", key, type(error).__name__)

    async def _acquire(self, blob: BlobClient, key: str, wait_seconds: float) -> BlobLeaseClient:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        delay = 0.05
        lease = BlobLeaseClient(blob)
        made = False
        while True:
            try:
                await lease.acquire(lease_duration=LEASE_SECONDS)
                return lease
            except HttpResponseError as error:
                answer = _answer(error)
                if answer == NO_BLOB:
                    await self._make(blob)
                    if not made:  # ours or a racer's, it exists now: ask again at once
                        made = True
                        continue
                elif answer not in HELD:
                    raise
            if loop.time() + delay > deadline:
                raise RegistrationBusy("Another operation on this registration is in progress.", lock=key)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            delay = min(delay * 2, 0.25)  # short: the holder usually finishes in well under a second

    @staticmethod
    async def _make(blob: BlobClient) -> None:
        """Create the empty lock blob unless it exists; another caller may create and lease it first."""
        try:
            await blob.upload_blob(b"", overwrite=False)
        except HttpResponseError as error:
            if _answer(error) not in ALREADY_MADE:
                raise

    @staticmethod
    async def _keep(lease: BlobLeaseClient, key: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                await lease.renew()
            except HttpResponseError as error:
                status, code = _answer(error)
                logger.warning(
                    "could not renew the lock on %s (%s %s, %s); another caller may take it over",
                    key, status, code, request_ids_text(request_ids(error)),
                )  # fmt: skip
            except (ServiceRequestError, ServiceResponseError) as error:
                logger.warning(
                    "could not renew the lock on %s (%s); another caller may take it over", key, type(error).__name__
                )

    async def close(self) -> None:
        await self._service.close()
