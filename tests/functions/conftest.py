"""Function-level fixtures: the registered functions, wired to real SDK adapters against the stand-in."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import azure.functions as func
import pytest
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential

import function_app
from emulator.launcher import StandIn
from shared import bootstrap
from shared.settings import load_settings
from tests.azurite import Azurite
from tests.emulator.directory import GRAPH_APP_ID, federated_app
from tests.emulator.sdk import graph_client

# get_functions() indexes the app and may run once per process.
REGISTERED = function_app.app.get_functions()
FUNCTIONS: dict[str, Callable[..., Awaitable[Any]]] = {
    str(f.get_function_name()): f.get_user_function() for f in REGISTERED
}


@dataclass
class Api:
    """Calls the registered functions the way the Functions host would, with real HttpRequest objects."""

    stand_in: StandIn
    services: bootstrap.Services

    async def call(
        self,
        function: str,
        method: str,
        path: str,
        route_params: dict[str, str] | None = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> func.HttpResponse:
        # As the Functions host does: the query string becomes `params`.
        query = dict(parse_qsl(urlsplit(path).query))
        request = func.HttpRequest(
            method,
            f"http://localhost:7071/api/{path}",
            headers=headers or {},
            params=query,
            route_params=route_params or {},
            body=body,
        )
        response = await FUNCTIONS[function](request)
        assert isinstance(response, func.HttpResponse)
        return response

    async def put(self, tenant: str, integration: str, body: bytes = b"", **headers: str) -> func.HttpResponse:
        if body and "content_type" not in headers:
            headers["content_type"] = "application/json"
        return await self.call(
            "onboard_integration",
            "PUT",
            f"tenants/{tenant}/integrations/{integration}",
            {"tenantId": tenant, "integration": integration},
            body,
            {k.replace("_", "-"): v for k, v in headers.items()},
        )

    async def get(self, tenant: str, integration: str) -> func.HttpResponse:
        return await self.call(
            "get_integration",
            "GET",
            f"tenants/{tenant}/integrations/{integration}",
            {"tenantId": tenant, "integration": integration},
        )

    def apps(self) -> list[dict[str, Any]]:
        """Apps this test's services manage in the home tenant (by unique-name prefix)."""
        prefix = self.services.settings.name_prefix + "-"
        apps = self.stand_in.state()["tenants"][self.stand_in.home_tenant_id]["applications"]
        return [a for a in apps if (a.get("uniqueName") or "").startswith(prefix)]


def app_environment(
    monkeypatch: pytest.MonkeyPatch, stand_in: StandIn, letter: str, azurite: Azurite | None = None, **settings: str
) -> None:
    """The app's settings pointed at `stand_in`, a name prefix of its own (so tests never share apps or
    secrets), blob-lease locks in `azurite` when given, and any extra settings."""
    for name, value in stand_in.app_settings().items():
        monkeypatch.setenv(name, value)
    if azurite is not None:
        monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("NAME_PREFIX", f"{letter}{uuid.uuid4().hex[:10]}")
    for name, value in settings.items():
        monkeypatch.setenv(name, value)


@contextlib.asynccontextmanager
async def serving(stand_in: StandIn, **build: Any) -> AsyncIterator[Api]:
    """The registered functions served as the host would serve them: one composition root built from the
    environment's settings (`build` passes `now` or `catalog` through), closed afterwards."""
    services = bootstrap.build(load_settings(), **build)
    bootstrap.override(services)
    try:
        yield Api(stand_in, services)
    finally:
        bootstrap.override(None)
        await services.close()


@pytest.fixture
async def api(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """A fresh composition root per test with its own name prefix, so tests never share apps or secrets.

    Locks are blob leases in Azurite, as they are leases in the Functions storage account in Azure."""
    app_environment(monkeypatch, stand_in, "t", azurite)
    async with serving(stand_in) as served:
        yield served


def body_of(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


# --- vendor-hosted mode: customer tenants reached through the federated provisioner app ---

NORTHWIND = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"
FABRIKAM = "b7d9f1e3-2a4c-4d6e-8f10-1a2b3c4d5e6f"  # never consents
PROVISIONER_ROLES = ["Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"]


async def provisioner_app(stand_in: StandIn, subject: str) -> str:
    """The vendor's multi-tenant provisioner app, trusting `subject` (the managed identity) by federation."""
    identity = AsyncManagedIdentityCredential()
    try:
        return await federated_app(graph_client(stand_in, identity), stand_in, uuid.uuid4().hex[:8], subject)
    finally:
        await identity.close()


def consent(stand_in: StandIn, tenant: str, app_id: str) -> None:
    """What the customer's admin does once: consent to the provisioner app."""
    stand_in.admin("POST", f"/tenants/{tenant}/consent", {"appId": app_id, "roles": {GRAPH_APP_ID: PROVISIONER_ROLES}})


@pytest.fixture
async def vendor(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, str, str]]:
    """Services in vendor-hosted mode; yields (api, provisioner client id, a second consented tenant)."""
    for name, value in stand_in.app_settings().items():
        monkeypatch.setenv(name, value)
    provisioner = await provisioner_app(stand_in, str(stand_in.info["managed_identity_object_id"]))
    second = stand_in.admin(
        "POST", "/tenants", {"displayName": "Contoso Retail", "resourceApps": ["graph", "logAnalytics"]}
    )["id"]
    consent(stand_in, NORTHWIND, provisioner)
    consent(stand_in, second, provisioner)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("NAME_PREFIX", f"v{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("PROVISIONER_CLIENT_ID", provisioner)
    async with serving(stand_in) as served:
        yield served, provisioner, second
