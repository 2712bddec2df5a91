"""A vendor-hosted world on a fresh stand-in for the product benchmarks: the provisioner app, consented tenants.

Every onboarding a benchmark times goes to a customer tenant of its own, created through the
stand-in's admin API and consented to the provisioner app, so no run meets an earlier run's
registration. Set-up talks plain HTTP (httpx, the sync managed identity credential) and never
imports msgraph-sdk, so a benchmark that measures a fresh process's first use of it is not
helped by its own set-up.
"""

from __future__ import annotations

import os
import ssl
import uuid
from dataclasses import dataclass, field

import httpx
from azure.identity import ManagedIdentityCredential

from emulator.launcher import StandIn, start_stand_in

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# What a customer's admin consents to (README, deployment modes), Policy.Read.All included so
# secret lifetimes are clamped ahead of time as in a real deployment.
PROVISIONER_ROLES = [
    "Application.ReadWrite.OwnedBy",
    "Application.Read.All",
    "AppRoleAssignment.ReadWrite.All",
    "Policy.Read.All",
]
INTEGRATION = "m365-defender"  # the README's example: ten Graph permissions, one resource API


@dataclass
class VendorWorld:
    stand_in: StandIn
    provisioner_app_id: str
    storage_connection_string: str | None
    azurite: object | None = None
    name_prefix: str = field(default_factory=lambda: f"b{uuid.uuid4().hex[:10]}")

    def app_settings(self) -> dict[str, str]:
        """What the Functions host would put in the worker's environment."""
        settings = {
            **self.stand_in.app_settings(),
            "PROVISIONER_CLIENT_ID": self.provisioner_app_id,
            "NAME_PREFIX": self.name_prefix,
        }
        if self.storage_connection_string:
            settings["AzureWebJobsStorage"] = self.storage_connection_string
        return settings

    def new_tenants(self, count: int) -> list[str]:
        """`count` customer tenants (Graph only), each consented to the provisioner app."""
        return [consented_tenant(self.stand_in, self.provisioner_app_id, index, ["graph"]) for index in range(count)]

    def stop(self) -> None:
        self.stand_in.stop()
        stop = getattr(self.azurite, "stop", None)
        if stop is not None:
            stop()


def start_world(storage: bool) -> VendorWorld:
    """A fresh stand-in, the provisioner app trusting its managed identity, and (with `storage`) Azurite
    for the blob-lease locks, as the deployed app always has its storage account."""
    stand_in = start_stand_in()
    azurite = None
    try:
        provisioner = provisioner_app(stand_in)
        connection_string = None
        if storage:
            from tests.azurite import start_azurite  # npm's Azurite, as the tests run it

            azurite = start_azurite()
            connection_string = azurite.connection_string
        return VendorWorld(stand_in, provisioner, connection_string, azurite)
    except BaseException:
        stand_in.stop()
        if azurite is not None:
            azurite.stop()
        raise


def azurite_installed() -> bool:
    from tests.azurite import AZURITE

    return AZURITE.exists()


def provisioner_app(stand_in: StandIn) -> str:
    """The vendor's multi-tenant provisioner app with a federated credential trusting the managed identity."""
    saved = {name: os.environ.get(name) for name in stand_in.identity_env()}
    os.environ.update(stand_in.identity_env())
    try:
        client_id = str(stand_in.info["managed_identity_client_id"])
        token = ManagedIdentityCredential(client_id=client_id).get_token("https://graph.microsoft.com/.default").token
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    context = ssl.create_default_context(cafile=stand_in.ca_bundle)
    headers = {"authorization": f"Bearer {token}"}
    with httpx.Client(base_url=stand_in.graph_url + "/", verify=context, headers=headers) as graph:
        created = graph.patch(
            f"applications(uniqueName='bench-provisioner-{uuid.uuid4().hex[:8]}')",
            json={"displayName": "Bench provisioner", "signInAudience": "AzureADMultipleOrgs"},
            headers={"prefer": "create-if-missing"},
        )
        created.raise_for_status()
        app = created.json()
        graph.post(
            f"applications/{app['id']}/federatedIdentityCredentials",
            json={
                "name": "function-identity",
                "issuer": f"https://login.microsoftonline.com/{stand_in.home_tenant_id}/v2.0",
                "subject": str(stand_in.info["managed_identity_object_id"]),
                "audiences": ["api://AzureADTokenExchange"],
            },
        ).raise_for_status()
    return str(app["appId"])


def consented_tenant(stand_in: StandIn, provisioner: str, index: int, resource_apps: list[str]) -> str:
    """A new customer tenant with these resource APIs, whose admin has consented to the provisioner app."""
    tenant = stand_in.admin(
        "POST", "/tenants", {"displayName": f"Bench customer {index}", "resourceApps": resource_apps}
    )["id"]
    stand_in.admin(
        "POST", f"/tenants/{tenant}/consent", {"appId": provisioner, "roles": {GRAPH_APP_ID: PROVISIONER_ROLES}}
    )
    return str(tenant)
