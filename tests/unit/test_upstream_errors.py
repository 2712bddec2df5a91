"""Upstream request ids for support tickets (issue 14), each SDK family's exception shape at a time.

The stand-in sends one shape of each (tests/emulator/test_upstream_request_ids.py); these build the
others the SDKs hand over: kiota's headers as httpx.Headers, a plain dict or a HeadersCollection, the ids
only in Graph's innerError, a $batch item, Key Vault's `x-ms-request-id`, Entra's body or only its text.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import AsyncMock, MagicMock

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError
from azure.core.rest import HttpRequest
from azure.core.utils import CaseInsensitiveDict
from kiota_abstractions.headers_collection import HeadersCollection
from msgraph.generated.models.o_data_errors.inner_error import InnerError
from msgraph.generated.models.o_data_errors.main_error import MainError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from shared.adapters import entra_answers, graph_failures
from shared.adapters.azure_core_errors import request_ids
from shared.adapters.graph import GraphDirectory
from shared.adapters.identity import Identity
from shared.adapters.keyvault import KeyVault
from shared.adapters.locks import BlobLeaseLocks
from shared.domain.errors import (
    UPSTREAM_REQUEST_IDS,
    ConsentRequired,
    NotOwned,
    SecretsForbiddenByPolicy,
    TenantNotFound,
    UpstreamError,
    UpstreamUnavailable,
    request_ids_text,
)
from shared.domain.ports import ApplicationSpec
from shared.entrypoints.http_common import problem_response
from shared.settings import Settings, load_settings

HOME = "11111111-1111-4111-8111-111111111111"
TENANT = "22222222-2222-4222-8222-222222222222"
REQUEST_ID = "3f0c9a8e-1b2d-4c5e-8f70-9a1b2c3d4e5f"
CLIENT_REQUEST_ID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
TRACE_ID = "0000aaaa-11bb-cccc-dd22-eeeeee333333"
CORRELATION_ID = "aaaa0000-bb11-2222-33cc-444444dddddd"
DESCRIPTION = (
    f"AADSTS90002: Tenant '{TENANT}' not found. Trace ID: {TRACE_ID} Correlation ID: {CORRELATION_ID} "
    "Timestamp: 2025-01-15 09:00:00Z"
)
SPEC = ApplicationSpec("app", (), "", ())


def settings() -> Settings:
    return load_settings({"KEY_VAULT_URL": "https://vault.example.net", "HOME_TENANT_ID": HOME})


def odata_error(status: int, code: str, headers: object = None, inner: InnerError | None = None) -> ODataError:
    return ODataError(
        response_status_code=status,
        response_headers=headers,  # kiota hands over whatever its transport had
        error=MainError(code=code, message="Graph's message", inner_error=inner),
    )


class AzureResponse:
    """What azure-core's transports hand an HttpResponseError: status, headers, the request, a text body."""

    def __init__(self, status: int, headers: dict[str, str], body: object, sent: dict[str, str] | None = None) -> None:
        self.status_code = status
        self.reason = "Failed"
        self.headers = CaseInsensitiveDict(headers)
        self.request = HttpRequest("PUT", "https://vault.example.net/secrets/x", headers=sent or {})
        self.content_type = "application/json"
        self._body = json.dumps(body)

    def text(self, encoding: str | None = None) -> str:
        return self._body

    def body(self) -> bytes:
        return self._body.encode()


def problem(error: UpstreamError | ConsentRequired | TenantNotFound | NotOwned) -> dict[str, Any]:
    body = json.loads(problem_response(error, "/api/x").get_body())
    assert isinstance(body, dict)
    return body


# --- the mechanism: one keyword, one extension member ---


def test_the_ids_become_the_upstream_request_ids_member_and_are_left_out_when_none_is_known() -> None:
    ids = {"request-id": REQUEST_ID, "client-request-id": CLIENT_REQUEST_ID}
    error = UpstreamUnavailable("Graph is busy", "graph", 503, "busy", retry_after=2.0, upstream_request_ids=ids)
    assert error.upstream_request_ids == ids and error.retry_after == 2.0
    assert problem(error)[UPSTREAM_REQUEST_IDS] == ids
    bare = UpstreamError("Graph failed", "graph", 500, None, upstream_request_ids={"request-id": ""})
    assert bare.upstream_request_ids == {} and UPSTREAM_REQUEST_IDS not in problem(bare)
    assert UPSTREAM_REQUEST_IDS not in problem(ConsentRequired("no consent", tenantId=TENANT))
    assert request_ids_text(ids) == f"request-id={REQUEST_ID} client-request-id={CLIENT_REQUEST_ID}"
    assert request_ids_text({}) == "no upstream request id"


# --- Graph (kiota) ---


@pytest.mark.parametrize(
    "headers",
    [
        httpx.Headers({"Request-Id": REQUEST_ID, "client-request-id": CLIENT_REQUEST_ID}),
        {"request-id": REQUEST_ID, "Client-Request-Id": CLIENT_REQUEST_ID},
        {"request-id": [REQUEST_ID], "client-request-id": {CLIENT_REQUEST_ID}},
    ],
    ids=["httpx", "dict", "dict-of-lists"],
)
def test_graphs_ids_come_from_the_headers_however_kiota_keeps_them(headers: object) -> None:
    ids = graph_failures.request_ids(odata_error(500, "generalException", headers))
    assert ids == {"request-id": REQUEST_ID, "client-request-id": CLIENT_REQUEST_ID}


def test_graphs_ids_come_from_a_headers_collection_and_else_from_the_inner_error_with_its_date() -> None:
    collection = HeadersCollection()
    collection.add("request-id", REQUEST_ID)
    assert graph_failures.request_ids(odata_error(500, "x", collection)) == {"request-id": REQUEST_ID}
    inner = InnerError(request_id=REQUEST_ID, client_request_id=CLIENT_REQUEST_ID, date=datetime(2025, 1, 15, 9))
    assert graph_failures.request_ids(odata_error(500, "x", None, inner)) == {
        "request-id": REQUEST_ID,
        "client-request-id": CLIENT_REQUEST_ID,
        "date": "2025-01-15T09:00:00",
    }
    assert graph_failures.request_ids(ODataError(response_status_code=502)) == {}


def test_a_graph_batch_items_ids_and_a_request_that_got_no_answer() -> None:
    item = {
        "id": "0",
        "status": 403,
        "headers": {"Content-Type": "application/json"},
        "body": {"error": {"code": "Authorization_RequestDenied", "innerError": {"request-id": REQUEST_ID}}},
    }
    assert graph_failures.item_ids(item) == {"request-id": REQUEST_ID}
    assert graph_failures.item_ids({"status": 500, "body": "not json"}) == {}
    request = httpx.Request("GET", "https://graph.example/v1.0/x", headers={"client-request-id": CLIENT_REQUEST_ID})
    assert graph_failures.sent_ids(httpx.ConnectTimeout("timed out", request=request)) == {
        "client-request-id": CLIENT_REQUEST_ID
    }
    assert graph_failures.sent_ids(httpx.ConnectTimeout("timed out")) == {}


def directory_on(client: MagicMock) -> GraphDirectory:
    directory = GraphDirectory(settings(), MagicMock())
    directory.clients.client = lambda tenant_id: client  # type: ignore[method-assign]
    return directory


async def test_graph_failures_chain_the_sdks_error_and_carry_its_ids(caplog: pytest.LogCaptureFixture) -> None:
    headers = {"request-id": REQUEST_ID, "client-request-id": CLIENT_REQUEST_ID}
    ids = dict(headers)
    client = MagicMock()
    refused_read = odata_error(500, "generalException", headers)
    client.request_adapter.send_primitive_async = AsyncMock(side_effect=refused_read)
    refused_password = odata_error(400, "CredentialTypeNotAllowedAsPerAppPolicy", headers)
    client.applications.by_application_id.return_value.add_password.post = AsyncMock(side_effect=refused_password)
    directory = directory_on(client)
    caplog.set_level(logging.INFO, logger="shared.adapters.graph")

    with pytest.raises(UpstreamError) as read:
        await directory.find_application(TENANT, "name")
    assert read.value.__cause__ is refused_read and read.value.upstream_request_ids == ids
    assert problem(read.value)[UPSTREAM_REQUEST_IDS] == ids

    with pytest.raises(SecretsForbiddenByPolicy) as policy:
        await directory.add_password(TENANT, "app", "name", datetime.now(UTC) + timedelta(days=1))
    assert policy.value.__cause__ is refused_password and policy.value.extensions[UPSTREAM_REQUEST_IDS] == ids

    client.request_adapter.send_primitive_async = AsyncMock(side_effect=odata_error(403, "Forbidden", headers))
    with pytest.raises(NotOwned) as owned:
        await directory.upsert_application(TENANT, "name", SPEC)
    assert isinstance(owned.value.__cause__, ODataError) and owned.value.upstream_request_ids == ids

    lost = httpx.ReadTimeout("read timed out", request=httpx.Request("GET", "https://g", headers=headers))
    client.request_adapter.send_primitive_async = AsyncMock(side_effect=lost)
    with pytest.raises(UpstreamError) as timeout:
        await directory.find_application(TENANT, "name")
    assert timeout.value.__cause__ is lost and timeout.value.upstream_request_ids == {
        "client-request-id": CLIENT_REQUEST_ID
    }
    assert caplog.text.count(REQUEST_ID) == 3  # one line per failed answer


async def test_a_refused_grant_carries_the_ids_of_its_batch_item() -> None:
    directory = directory_on(MagicMock())
    refusal = {
        "id": "0",
        "status": 403,
        "body": {"error": {"code": "Authorization_RequestDenied", "innerError": {"request-id": REQUEST_ID}}},
    }
    directory._batch = AsyncMock(return_value={"0": refusal})  # type: ignore[method-assign]
    directory.assignments = AsyncMock(return_value=[])  # type: ignore[method-assign]
    with pytest.raises(UpstreamError) as refused:
        await directory.grant(TENANT, "principal", [("resource", "role")])
    assert refused.value.extensions[UPSTREAM_REQUEST_IDS] == {"request-id": REQUEST_ID}


# --- Key Vault and Storage (azure-core) ---


def test_azure_cores_ids_from_the_answer_else_from_the_request_the_sdk_sent() -> None:
    answered = HttpResponseError(
        response=AzureResponse(
            403, {"x-ms-request-id": REQUEST_ID, "X-MS-Client-Request-Id": CLIENT_REQUEST_ID}, {"error": {}}
        )
    )
    assert request_ids(answered) == {"x-ms-request-id": REQUEST_ID, "x-ms-client-request-id": CLIENT_REQUEST_ID}
    not_echoed = HttpResponseError(response=AzureResponse(500, {}, {}, sent={"x-ms-client-request-id": "sent-1"}))
    assert request_ids(not_echoed) == {"x-ms-client-request-id": "sent-1"}
    assert request_ids(ServiceRequestError("no connection")) == {}


async def test_key_vault_failures_chain_the_sdks_error_and_carry_its_ids() -> None:
    vault = KeyVault(settings(), MagicMock())
    refusal = HttpResponseError(
        response=AzureResponse(
            403,
            {"x-ms-request-id": REQUEST_ID},
            {"error": {"code": "Forbidden", "message": "no"}},
            sent={"x-ms-client-request-id": CLIENT_REQUEST_ID},
        )
    )
    client = MagicMock()
    client.get_secret = AsyncMock(side_effect=refusal)
    client.update_secret_properties = AsyncMock(side_effect=ServiceRequestError("no connection"))
    vault._client = client
    with pytest.raises(UpstreamError) as read:
        await vault.read("name")
    assert read.value.__cause__ is refusal
    assert problem(read.value)[UPSTREAM_REQUEST_IDS] == {
        "x-ms-request-id": REQUEST_ID,
        "x-ms-client-request-id": CLIENT_REQUEST_ID,
    }
    with pytest.raises(UpstreamUnavailable) as unanswered:
        await vault.update_tags("name", "1", {})
    assert isinstance(unanswered.value.__cause__, ServiceRequestError)
    assert unanswered.value.upstream_request_ids == {}


async def test_a_refused_lock_carries_storages_ids() -> None:
    locks = BlobLeaseLocks(
        connection_string="DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    )
    refusal = HttpResponseError(response=AzureResponse(403, {"x-ms-request-id": REQUEST_ID}, {}))
    locks._ensure_container = AsyncMock(side_effect=refusal)  # type: ignore[method-assign]
    try:
        with pytest.raises(UpstreamUnavailable) as refused:
            async with locks.hold("tenant/integration", 1.0):
                pass
    finally:
        await locks.close()
    assert refused.value.__cause__ is refusal
    assert refused.value.extensions[UPSTREAM_REQUEST_IDS]["x-ms-request-id"] == REQUEST_ID


# --- Entra (azure-identity) ---


def entra_refusal(
    body: object | None, message: str = f"Microsoft Entra ID error '(invalid_tenant) {DESCRIPTION}'"
) -> ClientAuthenticationError:
    response = AzureResponse(400, {}, body) if body is not None else None
    return ClientAuthenticationError(message=message, response=response)


def test_entras_ids_from_its_body_else_from_its_description_and_only_in_their_own_shape() -> None:
    expected = {"trace_id": TRACE_ID, "correlation_id": CORRELATION_ID, "timestamp": "2025-01-15 09:00:00Z"}
    body = {"error": "invalid_tenant", "error_description": DESCRIPTION, **expected}
    assert entra_answers.entra_ids(entra_refusal(body, message="no ids in this text")) == expected
    assert entra_answers.entra_ids(entra_refusal(None)) == expected  # no response kept: the description's text
    odd = {**expected, "trace_id": "not an id <script>", "correlation_id": 42}
    assert entra_answers.entra_ids(entra_refusal(odd, message="nothing")) == {"timestamp": "2025-01-15 09:00:00Z"}
    assert entra_answers.entra_ids(entra_refusal(None, message="no answer")) == {}


async def test_entras_refusal_is_chained_into_tenant_not_found_and_consent_required() -> None:
    access = Identity(load_settings({
        "KEY_VAULT_URL": "https://vault.example.net", "HOME_TENANT_ID": HOME,
        "PROVISIONER_CLIENT_ID": "33333333-3333-4333-8333-333333333333",
    }))  # fmt: skip
    unknown = entra_refusal({"trace_id": TRACE_ID, "correlation_id": CORRELATION_ID})
    unconsented = ClientAuthenticationError(
        message=f"AADSTS700016: Application not found. Trace ID: {TRACE_ID} Correlation ID: {CORRELATION_ID}"
    )
    credential = MagicMock()
    credential.get_token = AsyncMock(side_effect=unknown)
    access.management_credential = lambda tenant_id: credential  # type: ignore[method-assign]
    with pytest.raises(TenantNotFound) as not_found:
        await access.ensure_reachable(TENANT)
    assert not_found.value.__cause__ is unknown
    # The body's ids, and the timestamp only the description states.
    assert problem(not_found.value)[UPSTREAM_REQUEST_IDS] == {
        "trace_id": TRACE_ID, "correlation_id": CORRELATION_ID, "timestamp": "2025-01-15 09:00:00Z",
    }  # fmt: skip
    credential.get_token = AsyncMock(side_effect=unconsented)
    with pytest.raises(ConsentRequired) as consent:
        await access.ensure_reachable(TENANT)
    assert consent.value.upstream_request_ids == {"trace_id": TRACE_ID, "correlation_id": CORRELATION_ID}
    with contextlib.suppress(Exception):
        await access.close()
