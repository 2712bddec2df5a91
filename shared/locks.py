"""One writer per registration: blob leases in the Functions storage account, or a process lock locally.

Onboarding, rotation (timer, Key Vault event, on-demand) and offboarding of the same
tenant+integration may run at once, on different instances. Without a lock, two of them can
both find "no secret stored" and each mint one. A blob lease is the compare-and-set Azure
Storage offers every Functions app for free (the host uses the same mechanism for its own
singleton locks): acquiring a lease on `locks/{tenant}/{integration}` succeeds for exactly one
caller; the lease expires by itself if its holder dies, so a crash never wedges a registration.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from typing import Protocol

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.storage.blob.aio import BlobLeaseClient, BlobServiceClient, ContainerClient

from .errors import OnboardingError, UpstreamUnavailable

logger = logging.getLogger(__name__)
CONTAINER = "tenant-onboarding-locks"
# Leases last 15-60 s (or forever); 60 s bounds how long a dead holder blocks others, and a
# background renewal keeps a live holder's lease for as long as its work takes.
LEASE_SECONDS = 60
RENEW_EVERY_SECONDS = 20


class RegistrationBusy(OnboardingError):
    problem_type = "registration-busy"
    status = 409
    title = "Another operation on this registration is in progress"


class Locks(Protocol):
    def hold(self, key: str, wait_seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the lock for `key`, waiting up to `wait_seconds`; RegistrationBusy if it stays taken."""
        ...


class ProcessLocks:
    """For one process (the CLI's --local runs, unit tests): asyncio locks by key."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait_seconds: float) -> AsyncIterator[None]:
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            await asyncio.wait_for(lock.acquire(), timeout=max(wait_seconds, 0.001))
        except TimeoutError:
            raise RegistrationBusy("Another operation on this registration is in progress.", lock=key) from None
        try:
            yield
        finally:
            lock.release()


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
            blob = container.get_blob_client(f"{key}.lock")
            with contextlib.suppress(ResourceExistsError):
                await blob.upload_blob(b"", overwrite=False)
            lease = BlobLeaseClient(blob)
            await self._acquire(lease, key, wait_seconds)
        except (ServiceRequestError, ServiceResponseError) as error:
            raise UpstreamUnavailable(
                "Storage did not answer while taking a lock", "storage", None, type(error).__name__
            ) from None
        renewal = asyncio.create_task(self._keep(lease, key))
        try:
            yield
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            try:
                await lease.release()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError):
                # It expires by itself within LEASE_SECONDS; nothing is lost but a little time.
                logger.warning("could not release the lock on %s; it will expire", key)

    async def _acquire(self, lease: BlobLeaseClient, key: str, wait_seconds: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        delay = 0.05
        while True:
            try:
                await lease.acquire(lease_duration=LEASE_SECONDS)
                return
            except HttpResponseError as error:
                if error.status_code != 409:  # 409 LeaseAlreadyPresent: someone else holds it
                    raise UpstreamUnavailable(
                        "Storage refused the lock", "storage", error.status_code, getattr(error, "error_code", None)
                    ) from None
            if loop.time() + delay > deadline:
                raise RegistrationBusy("Another operation on this registration is in progress.", lock=key)
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter
            delay = min(delay * 2, 0.25)  # short: the holder usually finishes in well under a second

    @staticmethod
    async def _keep(lease: BlobLeaseClient, key: str) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY_SECONDS)
            try:
                await lease.renew()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError):
                logger.warning("could not renew the lock on %s; another caller may take it over", key)

    async def close(self) -> None:
        await self._service.close()
