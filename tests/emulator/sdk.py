"""Builds the unmodified Microsoft SDK clients pointed at the stand-in (only endpoints and CA differ)."""

from __future__ import annotations

import ssl
from typing import Any

import httpx
from azure.core.credentials import TokenCredential
from azure.core.credentials_async import AsyncTokenCredential
from azure.identity import ClientSecretCredential
from azure.identity.aio import ClientSecretCredential as AsyncClientSecretCredential
from azure.keyvault.secrets import SecretClient
from azure.keyvault.secrets.aio import SecretClient as AsyncSecretClient
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from emulator.launcher import StandIn

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def graph_client(stand_in: StandIn, credential: TokenCredential | AsyncTokenCredential) -> GraphServiceClient:
    auth = AzureIdentityAuthenticationProvider(credential, scopes=[GRAPH_SCOPE])
    http = GraphClientFactory.create_with_default_middleware(
        client=httpx.AsyncClient(verify=ssl.create_default_context(cafile=stand_in.ca_bundle), timeout=30)
    )
    adapter = GraphRequestAdapter(auth, client=http)
    adapter.base_url = stand_in.graph_url
    return GraphServiceClient(request_adapter=adapter)


def secret_credential(
    stand_in: StandIn, tenant_id: str, client_id: str, secret: str, **kwargs: Any
) -> ClientSecretCredential:
    return ClientSecretCredential(
        tenant_id, client_id, secret,
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle, **kwargs,
    )  # fmt: skip


def async_secret_credential(
    stand_in: StandIn, tenant_id: str, client_id: str, secret: str
) -> AsyncClientSecretCredential:
    return AsyncClientSecretCredential(
        tenant_id, client_id, secret,
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip


def secret_client(stand_in: StandIn, credential: TokenCredential, **kwargs: Any) -> SecretClient:
    return SecretClient(
        stand_in.vault_url, credential, verify_challenge_resource=False, connection_verify=stand_in.ca_bundle, **kwargs
    )


def async_secret_client(stand_in: StandIn, credential: AsyncTokenCredential, **kwargs: Any) -> AsyncSecretClient:
    return AsyncSecretClient(
        stand_in.vault_url, credential, verify_challenge_resource=False, connection_verify=stand_in.ca_bundle, **kwargs
    )
