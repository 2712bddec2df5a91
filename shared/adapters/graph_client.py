"""Graph's clients: one per tenant this service keeps a credential for, all sending through one HTTP client.

Also the request builders and options the Directory calls share, and the two ways a request goes
out: a read parsed as JSON (None on 404), and a write whose 201 body is returned.
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import urlsplit

import httpx
from azure.core.credentials_async import AsyncTokenCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from kiota_authentication_azure.azure_identity_authentication_provider import AzureIdentityAuthenticationProvider
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.applications_with_unique_name.applications_with_unique_name_request_builder import (
    ApplicationsWithUniqueNameRequestBuilder,
)
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.service_principals_with_app_id.service_principals_with_app_id_request_builder import (
    ServicePrincipalsWithAppIdRequestBuilder,
)
from msgraph.graph_request_adapter import GraphRequestAdapter
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core import GraphClientFactory

from shared.adapters.graph_failures import no_answer, translate
from shared.adapters.identity import ManagementCredentials, TenantClients
from shared.adapters.service_token import ServiceToken
from shared.settings import Settings


def app_by_unique_name(client: GraphServiceClient, unique_name: str) -> ApplicationsWithUniqueNameRequestBuilder:
    """`client.applications_with_unique_name(...)` writes the key into the client's own shared
    path-parameter dict, so two concurrent calls can send each other's key (msgraph-sdk 1.65).
    Building the request builder on a copy keeps concurrent requests apart."""
    return ApplicationsWithUniqueNameRequestBuilder(client.request_adapter, dict(client.path_parameters), unique_name)


def sp_by_app_id(client: GraphServiceClient, app_id: str) -> ServicePrincipalsWithAppIdRequestBuilder:
    """See app_by_unique_name: the same shared-dict race in `service_principals_with_app_id`."""
    return ServicePrincipalsWithAppIdRequestBuilder(client.request_adapter, dict(client.path_parameters), app_id)


def create_if_missing() -> RequestConfiguration[Any]:
    config: RequestConfiguration[Any] = RequestConfiguration()
    config.headers.add("Prefer", "create-if-missing")
    return config


def no_sdk_retry() -> RequestConfiguration[Any]:
    return RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])


class GraphToken(ServiceToken):
    """The token a Graph request needs (kiota fetches it inside the request: shared/adapters/service_token.py)."""

    def __init__(self, credential: AsyncTokenCredential, tenant_id: str) -> None:
        super().__init__(credential, tenant_id, "the token Graph needs")


class GraphClients:
    def __init__(self, settings: Settings, identity: ManagementCredentials) -> None:
        self._settings = settings
        self._graph_host = (urlsplit(settings.graph_base_url).hostname or "").lower()
        self._identity = identity
        self._clients = TenantClients(identity, self._build)
        self._http: httpx.AsyncClient | None = None
        self._pool: httpx.AsyncHTTPTransport | None = None

    def client(self, tenant_id: str) -> GraphServiceClient:
        """One Graph client per kept tenant (on its credential and token cache), all on one HTTP client."""
        return self._clients.get(tenant_id)

    def _build(self, credential: AsyncTokenCredential, tenant_id: str) -> GraphServiceClient:
        # Tokens go to the configured Graph host only (kiota sends none elsewhere, a next link included).
        auth = AzureIdentityAuthenticationProvider(
            GraphToken(credential, tenant_id), scopes=[self._settings.graph_scope], allowed_hosts=[self._graph_host]
        )
        adapter = GraphRequestAdapter(auth, client=self.http_client())
        adapter.base_url = self._settings.graph_base_url
        return GraphServiceClient(request_adapter=adapter)

    def http_client(self) -> httpx.AsyncClient:
        """The middleware and connection pool every tenant's client shares: Graph is one host whatever the
        tenant (the token, added per request by each tenant's adapter, says which), so a new customer
        tenant costs no new TLS connection and no new client stack."""
        if self._http is None:
            verify: ssl.SSLContext | bool = (
                ssl.create_default_context(cafile=self._settings.tls_ca_bundle)
                if self._settings.tls_ca_bundle
                else True
            )
            # Keep the connection pool: msgraph-core wraps the client's transport in its middleware
            # transport, whose aclose does not reach the pool, so closing the client alone leaks sockets.
            self._pool = httpx.AsyncHTTPTransport(verify=verify)
            self._http = GraphClientFactory.create_with_default_middleware(
                client=httpx.AsyncClient(transport=self._pool, timeout=httpx.Timeout(30.0, connect=10.0))
            )
        return self._http

    async def read(self, tenant_id: str, info: RequestInformation, doing: str) -> dict[str, Any] | None:
        """GET through the SDK's adapter (auth, retries, middleware) and parse the JSON ourselves.

        msgraph-sdk's model deserialization costs ~9 ms of CPU per directory object (every
        Entity rebuilds a table of hundreds of field deserializers), which made it the
        onboarding's largest cost. Reads need a few fields, so they take the JSON as it comes.
        None on 404.
        """
        info.headers.try_add("Accept", "application/json")
        try:
            raw = await self.client(tenant_id).request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        except ODataError as error:
            if error.response_status_code == 404:
                return None
            raise translate(error, doing, tenant_id) from error
        except httpx.HTTPError as error:
            raise no_answer(error, tenant_id) from error
        body = json.loads(raw or b"{}")
        return body if isinstance(body, dict) else {}

    async def send_for_json(self, tenant_id: str, info: RequestInformation) -> dict[str, Any] | None:
        """Send a write; its JSON body (a 201's new object) as a dict, None for 204. ODataError passes through."""
        info.headers.try_add("Accept", "application/json")
        raw = await self.client(tenant_id).request_adapter.send_primitive_async(info, "bytes", {"XXX": ODataError})
        body = json.loads(raw) if raw else None
        return body if isinstance(body, dict) else None

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._pool is not None:
            await self._pool.aclose()
        self._http = self._pool = None
        self._clients.clear()
