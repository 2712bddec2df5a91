"""Fault injection: throttling, server errors, dropped connections and replication lag, as the SDKs see them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from azure.identity.aio import ManagedIdentityCredential as AsyncManagedIdentityCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_http.middleware.options import RetryHandlerOption
from msgraph.generated.models.application import Application
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.directory import add_password, create_if_missing, upsert_app
from tests.emulator.sdk import GRAPH_SCOPE, graph_client, secret_credential


@pytest.fixture
async def faulty(clean_faults: StandIn) -> AsyncIterator[StandIn]:
    yield clean_faults


def apps_named(stand_in: StandIn, unique_name: str) -> list[dict[str, object]]:
    apps = stand_in.state()["tenants"][stand_in.home_tenant_id]["applications"]
    return [a for a in apps if a["uniqueName"] == unique_name]


def fired(stand_in: StandIn) -> list[int]:
    return [int(rule["fired"]) for rule in stand_in.admin("GET", "/faults")["rules"]]


async def test_graph_429_with_retry_after_is_ridden_out_by_the_sdk(
    graph: GraphServiceClient, faulty: StandIn, unique: str
) -> None:
    faulty.set_faults([{"kind": "status", "service": "graph", "status": 429, "retry_after": 1, "count": 1}])
    app = await upsert_app(graph, f"throttled-{unique}")
    assert app.id
    assert fired(faulty) == [1]
    assert len(apps_named(faulty, f"throttled-{unique}")) == 1


async def test_graph_503_is_retried_by_the_sdk(graph: GraphServiceClient, faulty: StandIn) -> None:
    faulty.set_faults(
        [{"kind": "status", "service": "graph", "method": "GET", "status": 503, "retry_after": 1, "count": 1}]
    )
    page = await graph.applications.get()
    assert page is not None
    assert fired(faulty) == [1]


async def test_injected_500_reaches_the_caller_with_graphs_error_shape(
    graph: GraphServiceClient, faulty: StandIn
) -> None:
    faulty.set_faults([{"kind": "status", "service": "graph", "status": 500, "count": 1}])
    with pytest.raises(ODataError) as raised:
        await graph.applications.get()
    assert raised.value.response_status_code == 500
    assert raised.value.error is not None and raised.value.error.code == "generalException"


async def test_connection_dropped_before_the_service_creates_nothing(
    graph: GraphServiceClient, faulty: StandIn, unique: str
) -> None:
    faulty.set_faults([{"kind": "drop", "service": "graph", "method": "PATCH", "drop": "before", "count": 1}])
    with pytest.raises(httpx.HTTPError):
        await upsert_app(graph, f"dropped-{unique}")
    assert apps_named(faulty, f"dropped-{unique}") == []


async def test_connection_dropped_after_the_write_leaves_it_done_and_the_upsert_retry_converges(
    graph: GraphServiceClient, faulty: StandIn, unique: str
) -> None:
    name = f"lost-response-{unique}"
    faulty.set_faults([{"kind": "drop", "service": "graph", "method": "PATCH", "drop": "after", "count": 1}])
    with pytest.raises(httpx.HTTPError):
        await upsert_app(graph, name)
    assert len(apps_named(faulty, name)) == 1  # carried out, only the answer was lost

    again = await graph.applications_with_unique_name(name).patch(
        Application(display_name="again"), request_configuration=create_if_missing()
    )
    assert again is None  # 204: found, not created twice
    assert len(apps_named(faulty, name)) == 1


async def test_latency_rule_applies_to_the_matching_service_only(graph: GraphServiceClient, faulty: StandIn) -> None:
    faulty.set_faults([{"kind": "latency", "service": "vault", "latency_ms": 5000}])
    await graph.applications.get()
    rule = faulty.admin("GET", "/faults")["rules"][0]
    assert rule["seen"] == 0 and rule["fired"] == 0


async def outcomes(stand_in: StandIn, seed: int, requests: int) -> list[int]:
    no_retry: RequestConfiguration[None] = RequestConfiguration(options=[RetryHandlerOption(max_retries=0)])
    stand_in.set_faults(
        [{"kind": "status", "service": "graph", "method": "GET", "status": 500, "probability": 0.5}], seed=seed
    )
    credential = AsyncManagedIdentityCredential()
    client = graph_client(stand_in, credential)
    results = []
    try:
        for _ in range(requests):
            try:
                await client.applications.get(request_configuration=no_retry)
                results.append(200)
            except ODataError as error:
                results.append(int(error.response_status_code or 0))
    finally:
        await credential.close()
    return results


async def test_faults_are_reproducible_from_their_seed(faulty: StandIn) -> None:
    first = await outcomes(faulty, seed=7, requests=16)
    second = await outcomes(faulty, seed=7, requests=16)
    other = await outcomes(faulty, seed=8, requests=16)
    assert first == second
    assert set(first) == {200, 500}
    assert other != first


async def test_replication_lag_hides_a_new_app_from_reads_and_dependent_writes(
    graph: GraphServiceClient, faulty: StandIn, unique: str
) -> None:
    faulty.set_faults(application=60_000)
    created = await graph.applications.post(Application(display_name="lagging", unique_name=f"lag-{unique}"))
    assert created is not None

    with pytest.raises(ODataError) as read:
        await graph.applications.by_application_id(str(created.id)).get()
    assert read.value.response_status_code == 404
    assert read.value.error is not None and read.value.error.code == "Request_ResourceNotFound"

    with pytest.raises(ODataError) as sp:
        await graph.service_principals_with_app_id(str(created.app_id)).patch(
            ServicePrincipal(), request_configuration=create_if_missing()
        )
    assert sp.value.response_status_code == 400
    assert sp.value.error is not None and sp.value.error.details is not None
    assert sp.value.error.details[0].code == "NoBackingApplicationObject"

    with pytest.raises(ODataError) as password:
        await add_password(graph, str(created.id))
    assert password.value.response_status_code == 404

    # The write replica already knows the uniqueName, so an upsert cannot create a twin.
    assert (
        await graph.applications_with_unique_name(f"lag-{unique}").patch(
            Application(display_name="lagging"), request_configuration=create_if_missing()
        )
        is None
    )


async def test_token_endpoint_503_is_retried_by_azure_identity(
    graph: GraphServiceClient, faulty: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"entra-503-{unique}")
    secret = await add_password(graph, str(app.id))
    faulty.set_faults(
        [{"kind": "status", "service": "entra", "path": "/oauth2/", "status": 503, "retry_after": 0, "count": 1}]
    )
    credential = secret_credential(faulty, faulty.home_tenant_id, str(app.app_id), str(secret.secret_text))
    # No service principal yet, so the retried request ends in Entra's real answer, not the fault.
    with pytest.raises(Exception, match="AADSTS7000229"):
        credential.get_token(GRAPH_SCOPE)
    assert fired(faulty) == [1]


def test_identity_endpoint_500_is_retried_by_the_managed_identity_credential(faulty: StandIn) -> None:
    faulty.set_faults([{"kind": "status", "service": "identity", "status": 500, "count": 1}])
    token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default")
    assert token.token
    assert fired(faulty) == [1]
