"""An upstream failure keeps what a support ticket to Microsoft needs (issue 14).

The product's real adapters, against the stand-in over HTTPS through the unmodified SDKs: each
failure becomes the project's error carrying the answer's request ids in `upstream_request_ids` and
the `upstreamRequestIds` problem-details member, logs them, and chains the SDK's exception as its
cause. None of it holds a secret.
"""

from __future__ import annotations

import json
import logging
import traceback
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from emulator.launcher import StandIn
from shared.adapters.graph import GraphDirectory
from shared.adapters.identity import Identity
from shared.adapters.keyvault import KeyVault
from shared.domain.errors import (
    UPSTREAM_REQUEST_IDS,
    ConsentRequired,
    OnboardingError,
    TenantNotFound,
    UpstreamError,
)
from shared.entrypoints.http_common import problem_response
from shared.settings import Settings, load_settings

FABRIKAM = "b7d9f1e3-2a4c-4d6e-8f10-1a2b3c4d5e6f"  # in the stand-in's seed; nobody consented to anything there


def settings_for(stand_in: StandIn, **extra: str) -> Settings:
    return load_settings({**stand_in.app_settings(), "NAME_PREFIX": f"r{uuid.uuid4().hex[:10]}", **extra})


@pytest.fixture
async def identity(clean_faults: StandIn) -> AsyncIterator[Identity]:
    identity = Identity(settings_for(clean_faults))
    try:
        yield identity
    finally:
        await identity.close()


def problem_body(error: OnboardingError) -> dict[str, object]:
    body = json.loads(problem_response(error, "/api/test").get_body())
    assert isinstance(body, dict)
    return body


def everything_said(error: BaseException, caplog: pytest.LogCaptureFixture) -> str:
    """The error, its chained causes as a traceback prints them, its problem body and the log records."""
    said = "".join(traceback.format_exception(error))
    if isinstance(error, OnboardingError):
        said += json.dumps(problem_body(error))
    return said + caplog.text


async def test_a_graph_failure_carries_graphs_request_ids_to_the_problem_and_the_log(
    clean_faults: StandIn, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    directory = GraphDirectory(settings_for(clean_faults), identity)
    answers: list[httpx.Response] = []

    async def record(response: httpx.Response) -> None:
        if "/applications" in response.request.url.path:
            answers.append(response)

    directory.clients.http_client().event_hooks["response"].append(record)  # what came over the wire
    clean_faults.set_faults(
        [{"kind": "status", "service": "graph", "method": "GET", "path": "applications", "status": 500, "count": 1}]
    )
    caplog.set_level(logging.INFO, logger="shared.adapters.graph")
    try:
        with pytest.raises(UpstreamError) as raised:
            await directory.find_application(clean_faults.home_tenant_id, f"ids-{uuid.uuid4().hex[:8]}")
    finally:
        await directory.close()

    error = raised.value
    [answer] = answers
    assert answer.status_code == 500
    sent = {"request-id": answer.headers["request-id"], "client-request-id": answer.headers["client-request-id"]}
    ids = error.extensions[UPSTREAM_REQUEST_IDS]
    assert ids == error.upstream_request_ids
    assert set(ids) == {"request-id", "client-request-id", "date"}  # and the date Graph's innerError gives
    assert {name: ids[name] for name in sent} == sent
    assert isinstance(error.__cause__, ODataError) and error.__cause__.response_status_code == 500
    assert (error.service, error.upstream_status, error.upstream_code) == ("graph", 500, "generalException")

    body = problem_body(error)
    assert body["type"] == error.type_uri and body[UPSTREAM_REQUEST_IDS] == ids
    assert sent["request-id"] in caplog.text and sent["client-request-id"] in caplog.text


async def test_a_key_vault_failure_carries_key_vaults_request_ids_and_never_the_secret(
    clean_faults: StandIn, identity: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    vault = KeyVault(settings_for(clean_faults), identity)
    value = f"not-for-any-log-{uuid.uuid4().hex}"
    # 403 is not retried by azure-core, so the first answer is the one the adapter translates.
    clean_faults.set_faults([{"kind": "status", "service": "vault", "method": "PUT", "status": 403, "count": 1}])
    caplog.set_level(logging.INFO, logger="shared.adapters.keyvault")
    try:
        with pytest.raises(UpstreamError) as raised:
            await vault.write(
                f"ids-{uuid.uuid4().hex[:8]}", value, "text/plain", {"kind": "test"}, datetime.now(UTC) + timedelta(1)
            )
    finally:
        await vault.close()

    error = raised.value
    cause = error.__cause__
    assert isinstance(cause, HttpResponseError) and cause.status_code == 403
    response: Any = cause.response  # the transport's response, as azure-core received it
    # The id azure-core sent with the request (RequestIdPolicy), and x-ms-request-id when the answer has one.
    # The stand-in's Key Vault answers carry no x-ms-request-id, where Key Vault's own always do.
    sent = response.request.headers["x-ms-client-request-id"]
    expected = {"x-ms-client-request-id": response.headers.get("x-ms-client-request-id") or sent}
    if response.headers.get("x-ms-request-id"):
        expected["x-ms-request-id"] = response.headers["x-ms-request-id"]
    assert error.upstream_request_ids == expected
    assert problem_body(error)[UPSTREAM_REQUEST_IDS] == expected
    assert (error.service, error.upstream_status) == ("keyvault", 403)
    assert sent in caplog.text
    assert value not in everything_said(error, caplog)


async def test_entras_refusals_carry_its_trace_and_correlation_ids(
    clean_faults: StandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """No such tenant (AADSTS90002), and a tenant where the provisioner app is unknown (AADSTS700016):
    what Microsoft support asks for about a token request is Entra's trace_id, correlation_id and timestamp."""
    identity = Identity(settings_for(clean_faults, PROVISIONER_CLIENT_ID=str(uuid.uuid4())))
    caplog.set_level(logging.INFO, logger="shared.adapters.identity")
    try:
        with pytest.raises(TenantNotFound) as unknown:
            await identity.ensure_reachable(str(uuid.uuid4()))
        with pytest.raises(ConsentRequired) as unconsented:
            await identity.ensure_reachable(FABRIKAM)
    finally:
        await identity.close()

    for raised in (unknown, unconsented):
        error = raised.value
        ids = error.extensions[UPSTREAM_REQUEST_IDS]
        assert set(ids) == {"trace_id", "correlation_id", "timestamp"} and ids == error.upstream_request_ids
        assert problem_body(error)[UPSTREAM_REQUEST_IDS] == ids
        assert ids["trace_id"] in caplog.text and ids["correlation_id"] in caplog.text
    assert isinstance(unknown.value.__cause__, ClientAuthenticationError)
    # Entra's own description states the same ids: the body's and the text's agree.
    assert unknown.value.upstream_request_ids["trace_id"] in str(unknown.value.__cause__)
