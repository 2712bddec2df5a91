"""TLS for the azure-core clients when a CA bundle is configured (the local stand-in): one context per process.

Given a CA *path* (`connection_verify=path`), azure-core's aiohttp transport builds a new
SSLContext on every request: the bundle is read from disk and parsed on the event loop, and
aiohttp, which pools connections per context, opens a new connection with a full TLS handshake
for every request. Here the context is built once and handed to the transport's connector, so
requests reuse connections as they do in Azure, where no bundle is configured and aiohttp's
default context is shared.
"""

from __future__ import annotations

import functools
import ssl
from typing import Any

import aiohttp
from azure.core.pipeline.transport import AioHttpTransport


@functools.cache
def _context(ca_bundle: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_bundle)


class _TrustingTransport(AioHttpTransport):  # type: ignore[misc]  # azure-core exports it lazily, untyped
    """azure-core's aiohttp transport whose session's connector holds one context trusting the bundle."""

    session: aiohttp.ClientSession | None

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__()
        self._context = context

    async def open(self) -> None:
        if self.session is None:
            # What azure-core's own session gets (no cookies, bodies left compressed), plus the context.
            self.session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._context),
                trust_env=True,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        await super().open()


def azure_transport(ca_bundle: str | None) -> dict[str, Any]:
    """Keyword arguments for an azure-core async client or an azure-identity async credential: none in
    Azure (the public roots, aiohttp's default context), a transport trusting `ca_bundle` otherwise."""
    if not ca_bundle:
        return {}
    return {"transport": _TrustingTransport(_context(ca_bundle))}
