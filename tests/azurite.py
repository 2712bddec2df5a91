"""Runs Azurite (the real local Azure Storage, from npm) for tests that need blob leases or the event outbox's queue.

Where Azurite is known to answer differently from Azure Storage, `StorageAnswers.start` puts a
proxy in front of it that gives Storage's answer instead, each difference with its source, so
the product is tested against what it will meet in Azure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import subprocess
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientSession, web
from azure.storage.blob.aio import BlobClient
from multidict import CIMultiDict
from yarl import URL

REPO = Path(__file__).resolve().parents[1]
AZURITE = REPO / "node_modules" / ".bin" / "azurite-blob"
# Azurite's published development account and key (learn.microsoft.com/azure/storage/common/storage-use-azurite).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
LISTENING = re.compile(r"listens on (http://[\d.]+:\d+)")


def connection_string(blob_endpoint: str) -> str:
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={blob_endpoint}/{DEV_ACCOUNT};"
    )


@dataclass
class Azurite:
    """Azurite's blob service and, when started with one, its queue service (the sweep's work queue lives there)."""

    process: subprocess.Popen[str]
    blob_endpoint: str
    queues: AzuriteQueues | None = None

    @property
    def connection_string(self) -> str:
        if self.queues is not None:
            return self.queues.connection_string(self.blob_endpoint)
        return connection_string(self.blob_endpoint)

    def stop(self) -> None:
        # In-memory and disposable: nothing to flush, and Azurite takes seconds over a graceful stop.
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.queues is not None:
            self.queues.stop()


@dataclass
class AzuriteQueues:
    """Azurite's queue service, beside a blob service: one connection string names both."""

    process: subprocess.Popen[str]
    queue_endpoint: str

    def connection_string(self, blob_endpoint: str) -> str:
        return connection_string(blob_endpoint) + f"QueueEndpoint={self.queue_endpoint}/{DEV_ACCOUNT};"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def start_azurite_queues(timeout: float = 30) -> AzuriteQueues:
    process, endpoint = _start(REPO / "node_modules" / ".bin" / "azurite-queue", "queue", timeout)
    return AzuriteQueues(process, endpoint)


def start_azurite(timeout: float = 30, *, queues: bool = True) -> Azurite:
    """Blob and queue services (the Functions storage account as the app uses it); `queues=False`: blobs alone. The
    two start side by side: each takes about a second."""
    if not queues:
        process, endpoint = _start(AZURITE, "blob", timeout)
        return Azurite(process, endpoint)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        blob = pool.submit(_start, AZURITE, "blob", timeout)
        queue = pool.submit(start_azurite_queues, timeout)
        process, endpoint = blob.result()
        return Azurite(process, endpoint, queue.result())


def _start(program: Path, service: str, timeout: float) -> tuple[subprocess.Popen[str], str]:
    if not program.exists():
        raise RuntimeError("Azurite is not installed: run scripts/setup (it runs npm ci)")
    process = subprocess.Popen(
        [
            str(program),
            "--inMemoryPersistence",
            f"--{service}Host",
            "127.0.0.1",
            f"--{service}Port",
            "0",
            "--skipApiVersionCheck",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = LISTENING.search(line)
        if match:
            return process, match.group(1)
    process.kill()
    raise RuntimeError(f"Azurite's {service} service did not start")


# Hop-by-hop and framing headers: each leg of the proxy sets its own.
_FRAMING = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "transfer-encoding", "upgrade", "host"}
# Storage's text for LeaseIdMissing (learn.microsoft.com/rest/api/storageservices/blob-service-error-codes).
_LEASE_ID_MISSING = "There is currently a lease on the blob and no lease ID was specified in the request."


@dataclass
class StorageAnswers:
    """Azurite behind a proxy that answers as Azure Storage does where Azurite does not.

    One difference so far. Put Blob with `If-None-Match: *` (an upload with overwrite=False) over
    a blob that exists and holds another caller's lease: Azure Storage answers 412 LeaseIdMissing,
    Azurite up to at least 3.37.0 answers 409 BlobAlreadyExists, because it checks If-None-Match
    before the lease (Azure/Azurite#2637). When a fixed Azurite is pinned, Azurite answers 412 by
    itself and the correction never fires; `test_azurite_still_differs_from_storage` says when.
    """

    upstream: str
    blob_endpoint: str = ""
    corrected: int = 0  # how many answers were Storage's rather than Azurite's
    # Runs in the proxy before each Put Blob is forwarded, with the blob's path: a test's way to
    # let another caller act at exactly that moment.
    before_put_blob: Callable[[str], Awaitable[None]] | None = None
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None
    _session: ClientSession | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_endpoint)

    async def _start(self) -> str:
        self._session = ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _FRAMING)
        body = await request.read()
        path = urlsplit(request.raw_path).path  # still percent-encoded, as the caller sent it
        put_blob = _is_put_blob(request)
        if put_blob and self.before_put_blob is not None:
            await self.before_put_blob(path)
        async with self._session.request(
            request.method,
            URL(self.upstream + request.raw_path, encoded=True),  # as signed: never re-encoded
            headers=headers,
            data=body,
            skip_auto_headers=("Content-Type",),  # Shared Key signs Content-Type: send only the caller's
            allow_redirects=False,
        ) as upstream:
            payload = await upstream.read()
            if (
                put_blob
                and request.headers.get("If-None-Match") == "*"
                and "x-ms-lease-id" not in request.headers
                and upstream.status == 409
                and upstream.headers.get("x-ms-error-code") == "BlobAlreadyExists"
                and await self._leased(path)
            ):
                self.corrected += 1
                return _lease_id_missing(upstream.headers)
            answer = CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in _FRAMING)
            if request.method != "HEAD":
                answer.popall("Content-Length", None)
            return web.Response(status=upstream.status, reason=upstream.reason, headers=answer, body=payload or None)

    async def _leased(self, path: str) -> bool:
        async with BlobClient.from_blob_url(
            self.upstream + path, credential={"account_name": DEV_ACCOUNT, "account_key": DEV_KEY}
        ) as blob:
            properties = await blob.get_blob_properties()
            return bool(properties.lease.state == "leased")

    @classmethod
    def start(cls, azurite: Azurite) -> StorageAnswers:
        proxy = cls(upstream=azurite.blob_endpoint)
        proxy._thread = threading.Thread(target=proxy._loop.run_forever, name="storage-answers", daemon=True)
        proxy._thread.start()
        proxy.blob_endpoint = asyncio.run_coroutine_threadsafe(proxy._start(), proxy._loop).result(timeout=10)
        return proxy

    def stop(self) -> None:
        if self._thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
        self._thread = None


def _is_put_blob(request: web.Request) -> bool:
    # Put Blob: a PUT on a blob with x-ms-blob-type and no `comp` (which would make it Put Block,
    # Put Block List, Lease Blob, Set Blob Metadata, ...).
    query = parse_qs(urlsplit(request.raw_path).query)
    return request.method == "PUT" and "comp" not in query and "x-ms-blob-type" in request.headers


def _lease_id_missing(upstream_headers: Mapping[str, str]) -> web.Response:
    """Storage's 412 LeaseIdMissing, carrying Azurite's request id for the request it refused."""
    headers = CIMultiDict[str]()
    for name in ("x-ms-request-id", "x-ms-version", "x-ms-client-request-id", "Server"):
        value = upstream_headers.get(name)
        if value is not None:
            headers[name] = value
    headers["x-ms-error-code"] = "LeaseIdMissing"
    headers["Date"] = formatdate(usegmt=True)
    request_id = headers.get("x-ms-request-id", "")
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error><Code>LeaseIdMissing</Code>'
        f"<Message>{_LEASE_ID_MISSING}\nRequestId:{request_id}\nTime:{time.strftime('%Y-%m-%dT%H:%M:%S.0000000Z', time.gmtime())}</Message></Error>"
    )
    return web.Response(
        status=412, reason=_LEASE_ID_MISSING, headers=headers, body=body.encode(), content_type="application/xml"
    )
