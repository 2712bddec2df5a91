"""Per-tenant state in one worker: bounded whatever tenant ids callers send, kept only for tenants that answered.

Any GUID in a URL reaches the per-tenant path (a credential for the tenant, a Graph client on it, a
token request to Entra), so what a worker keeps per tenant is bounded by what it is worth, not by
what callers send.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ClientAuthenticationError
from msgraph.graph_service_client import GraphServiceClient

from shared.adapters.identity import TENANT_CACHE_SIZE, FederatedCredential
from shared.domain.errors import OnboardingError
from tests.functions.conftest import NORTHWIND, Api, body_of, consent

# The suite CI floods 2,500 tenants (growth measured over the last 1,500, ten times the 256 the caches keep);
# `scripts/long` floods 10,000.
TENANTS = int(os.environ.get("TENANT_FLOOD", "2500"))
CHECKPOINTS = (*(n for n in (500, 1_000, 2_000, 3_000, 4_000, 6_000, 8_000) if n < TENANTS), TENANTS)
MEMORY_FROM = 1_000
# Kept memory may grow by this much over the unknown tenants after MEMORY_FROM: 512 bytes a tenant over 8,000. Before
# the caches were bounded each one kept about 300 KiB (a credential with its own connection pool and
# kept-alive TLS connection, a Graph client).
MEMORY_GROWTH_BOUND = 4 * 2**20
# Sockets the flood may add to those open before it: the shared pools' connections, not one per tenant.
SOCKET_SLACK = 16


def open_sockets() -> int:
    """The process's open sockets, from /proc/self/fd (Linux), with no dependency."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # the descriptor that listed the directory is closed by now
            continue
    return count


def live(kind: type) -> int:
    """How many `kind` objects exist anywhere in the process, held by a cache or leaked."""
    gc.collect()
    return sum(isinstance(o, kind) for o in gc.get_objects())


@pytest.fixture
def quiet() -> Iterator[None]:
    """Each refused tenant logs a warning, and pytest keeps every captured record in memory until the
    test ends: that would be the test's growth, not the worker's (in Azure logs leave the process)."""
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts sockets through /proc")
async def test_a_flood_of_unknown_tenants_leaves_credentials_clients_sockets_and_memory_bounded(
    vendor: tuple[Api, str, str], quiet: None
) -> None:
    """TENANT_FLOOD random tenant ids (2,500; 10,000 in scripts/long), one after another, each meeting Entra's
    AADSTS90002 (no such tenant).

    The odd ones through `GET …/integrations/{integration}` (the HTTP path: the tenant's credential,
    and before the reachability check also its Graph client), the even ones through a Graph read
    (the tenant's credential and Graph client, as every directory call builds them): each tenant
    builds the per-tenant objects and sends one real token request to the stand-in, about 2 ms each.
    Checked every few thousand tenants: live credentials and Graph clients (every one in the
    process, cached or leaked) within TENANT_CACHE_SIZE, sockets within a few of those open before,
    and, from tenant 2,000 on, memory allocated and still held (tracemalloc) under
    MEMORY_GROWTH_BOUND. Before the bound, 600 tenants kept 600 credentials, 300 Graph clients,
    up to 1,200 sockets and over 230 MiB.
    """
    api, _, _ = vendor
    services = api.services
    assert services.identity is not None and services.directory is not None
    answered = await api.call("tenant_consent", "GET", f"tenants/{NORTHWIND}/consent", {"tenantId": NORTHWIND})
    assert body_of(answered)["consented"] is True
    customer = services.identity.management_credential(NORTHWIND)
    sockets_before = open_sockets()
    try:
        for n in range(1, TENANTS + 1):
            tenant = str(uuid.uuid4())
            if n % 2:
                response = await api.get(tenant, "sentinel")
                assert response.status_code >= 400
            else:
                with pytest.raises((ClientAuthenticationError, OnboardingError)):
                    await services.directory.find_application(tenant, "flood")
            if n not in CHECKPOINTS:
                continue
            credentials, clients, sockets = live(FederatedCredential), live(GraphServiceClient), open_sockets()
            held = tracemalloc.get_traced_memory()[0] if tracemalloc.is_tracing() else 0
            print(f"{n} tenants: {credentials} credentials, {clients} Graph clients, {sockets} sockets, +{held} B")
            assert credentials <= TENANT_CACHE_SIZE, f"after {n} tenants"
            assert clients <= TENANT_CACHE_SIZE, f"after {n} tenants"
            assert sockets <= sockets_before + SOCKET_SLACK, f"after {n} tenants"
            assert held <= MEMORY_GROWTH_BOUND, f"after {n} tenants"
            if n == MEMORY_FROM:
                tracemalloc.start()  # counts what is allocated from here on and still held
    finally:
        tracemalloc.stop()
    # The customer that answered was kept through the flood: its next request needs no new token.
    assert services.identity.management_credential(NORTHWIND) is customer


async def test_only_tenants_that_answered_are_kept_and_the_least_recently_used_goes_first(
    vendor: tuple[Api, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, provisioner, second = vendor
    identity, directory = api.services.identity, api.services.directory
    assert identity is not None and directory is not None
    third = api.stand_in.admin("POST", "/tenants", {"displayName": "Tailspin", "resourceApps": ["graph"]})["id"]
    consent(api.stand_in, third, provisioner)
    identity.tenant_cache_size = 2
    closed: list[str] = []
    close = FederatedCredential.close

    async def recording(credential: FederatedCredential) -> None:
        closed.append(credential.tenant_id)
        await close(credential)

    monkeypatch.setattr(FederatedCredential, "close", recording)

    def kept(tenant: str) -> bool:
        return identity.keeps(tenant, identity.management_credential(tenant))

    unknown = str(uuid.uuid4())
    with pytest.raises(OnboardingError):
        await identity.consent(unknown)
    assert not kept(unknown)  # refused by Entra: nothing kept, and a client built on it is not kept either
    assert directory.clients.client(unknown) is not directory.clients.client(unknown)

    for tenant in (NORTHWIND, second, NORTHWIND):  # NORTHWIND asked again: now the most recently used
        assert (await identity.consent(tenant))[0] is True
    assert directory.clients.client(NORTHWIND) is directory.clients.client(NORTHWIND)  # kept beside its credential
    assert (await identity.consent(third))[0] is True
    assert closed == [second]  # the least recently used tenant went, and its credential was closed
    assert kept(NORTHWIND) and kept(third) and not kept(second)
    assert len(directory.clients._clients) <= 2


async def test_closing_an_evicted_credential_breaks_no_request_in_flight(
    vendor: tuple[Api, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every tenant's token requests share one connection pool; an evicted credential's close must leave it
    open for the others, and a Graph request already under way with the evicted tenant's token must finish."""
    api, provisioner, second = vendor
    identity, directory = api.services.identity, api.services.directory
    assert identity is not None and directory is not None
    third = api.stand_in.admin("POST", "/tenants", {"displayName": "Tailspin", "resourceApps": ["graph"]})["id"]
    consent(api.stand_in, third, provisioner)
    identity.tenant_cache_size = 1
    closed: list[str] = []
    close = FederatedCredential.close

    async def recording(credential: FederatedCredential) -> None:
        closed.append(credential.tenant_id)
        await close(credential)

    monkeypatch.setattr(FederatedCredential, "close", recording)
    assert (await identity.consent(NORTHWIND))[0] is True  # kept, with a Graph token
    api.stand_in.set_faults(
        [
            {"kind": "latency", "service": "graph", "latency_ms": 2500},
            {"kind": "latency", "service": "entra", "path": third, "latency_ms": 2500},
        ]
    )
    reading = asyncio.create_task(directory.find_application(NORTHWIND, "in-flight"))
    asking = asyncio.create_task(identity.consent(third))
    await asyncio.sleep(0.5)  # both requests are now waiting on the stand-in
    assert (await identity.consent(second))[0] is True  # evicts NORTHWIND and closes its credential
    assert closed == [NORTHWIND]
    assert await reading is None  # the Graph read under way finished: no such app
    assert (await asking)[0] is True  # the token request under way on the shared pool finished
    assert closed == [NORTHWIND, second]
