"""Fixtures for the stand-in's own tests: managed identity environment and SDK clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from azure.identity.aio import ManagedIdentityCredential
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.sdk import graph_client


@pytest.fixture(scope="session", autouse=True)
def managed_identity_env(stand_in: StandIn) -> Iterator[None]:
    """azure-identity (through MSAL) reads IDENTITY_ENDPOINT/IDENTITY_HEADER at every token request."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stand_in.identity_env().items():
            patch.setenv(name, value)
        yield


@pytest.fixture
async def graph(stand_in: StandIn) -> AsyncIterator[GraphServiceClient]:
    """Graph as the managed identity sees it (Application.ReadWrite.OwnedBy, AppRoleAssignment.ReadWrite.All)."""
    credential = ManagedIdentityCredential()
    try:
        yield graph_client(stand_in, credential)
    finally:
        await credential.close()


@pytest.fixture
def unique() -> str:
    return uuid.uuid4().hex[:10]
