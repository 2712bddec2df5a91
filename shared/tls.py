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
"""

from __future__ import annotations

import functools
import os
import ssl
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport


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
