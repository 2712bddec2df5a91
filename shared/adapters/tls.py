"""The aiohttp transport of the azure-core clients (Key Vault, token requests): one TLS context, no env lookups.

Given a CA *path* (`connection_verify=path`, the local stand-in), azure-core's aiohttp transport
builds a new SSLContext on every request: the bundle is read from disk and parsed on the event
loop, and aiohttp, which pools connections per context, opens a new connection with a full TLS
handshake for every request. Here the context is built once and handed to the transport's
connector, so requests reuse connections.

And with `trust_env` (azure-core's default), aiohttp looks up proxy settings and reads ~/.netrc
in a worker thread on *every* request: about 1.2 ms of CPU and two thread hand-offs a request,
measured on the sweep's listing, where Key Vault pages must be read one after another. These
clients authenticate with bearer tokens (netrc never applies), so the environment is consulted
only when a proxy is configured in it; otherwise the same transport serves Azure too, with
aiohttp's default context (the public roots).

Many credentials can share one transport (`SharedTransport`): each tenant's federated credential
otherwise owns an aiohttp session, its own connection pool and a kept-alive TLS connection to the
same token endpoint, for as long as the credential lives.
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport, AsyncHttpTransport


@functools.cache
def _context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


class _OneContextTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core exports it lazily, untyped
    """azure-core's aiohttp transport whose session's connector holds one TLS context (aiohttp's default
    when None) and reads the environment only when asked to (a proxy is configured)."""

    session: aiohttp.ClientSession | None

    def __init__(self, context: ssl.SSLContext | None, trust_env: bool) -> None:
        super().__init__()
        self._context = context
        self._trust_env = trust_env

    async def open(self) -> None:
        if self.session is None:
            # What azure-core's own session gets (no cookies, bodies left compressed), plus the context.
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._context if self._context is not None else True),
                trust_env=self._trust_env,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        await super().open()


PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def azure_transport(ca_bundle: str | None) -> dict[str, Any]:
    """Keyword arguments for an azure-core async client or an azure-identity async credential: a transport
    trusting `ca_bundle` (or the public roots) that consults the environment only for a configured proxy."""
    proxy = any(os.environ.get(name) for name in PROXY_VARIABLES)
    return {"transport": _OneContextTransport(_context(ca_bundle) if ca_bundle else None, trust_env=proxy)}


class _Borrowed(AsyncHttpTransport[Any, Any]):
    """A client's handle on a transport that others share: it sends through it and never closes it.

    A credential's `close` ends in its pipeline's transport (azure-identity's AadClient.close awaits
    `pipeline.__aexit__`, which awaits the transport's), so without this handle closing one
    tenant's credential would close every tenant's connection pool.
    """

    def __init__(self, shared: AsyncHttpTransport[Any, Any]) -> None:
        self._shared = shared

    async def send(self, request: Any, **kwargs: Any) -> Any:
        return await self._shared.send(request, **kwargs)

    async def open(self) -> None:
        await self._shared.open()

    async def close(self) -> None:
        """The owner of the shared transport closes it (SharedTransport.close)."""

    async def __aenter__(self) -> _Borrowed:
        await self.open()
        return self

    async def __aexit__(self, *args: object) -> None:
        await self.close()

    async def sleep(self, duration: float) -> None:
        await self._shared.sleep(duration)


class SharedTransport:
    """One transport (one aiohttp session and connection pool) lent to any number of azure-core clients.

    Lent handles never close it; `close` does, once, when nothing will send through it again."""

    def __init__(self, ca_bundle: str | None) -> None:
        self._transport: AsyncHttpTransport[Any, Any] = azure_transport(ca_bundle)["transport"]

    def lend(self) -> dict[str, Any]:
        """Keyword arguments for one more azure-core async client or azure-identity async credential."""
        return {"transport": _Borrowed(self._transport)}

    async def close(self) -> None:
        await self._transport.close()
