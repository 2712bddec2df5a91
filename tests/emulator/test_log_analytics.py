"""The Log Analytics query API through the unmodified azure-monitor-query LogsQueryClient.

The connector app queries with a client secret; its token must carry Data.Read and its service principal
must hold, once propagated, an Azure role on the workspace that allows queries. The role is given
through ARM by the delegate (the stand-in's managed identity), as the product will give it.
"""

from __future__ import annotations

import asyncio
import ssl
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity.aio import ManagedIdentityCredential
from azure.monitor.query import LogsQueryClient, LogsQueryResult, LogsQueryStatus
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.directory import add_password, grant, upsert_app, upsert_service_principal
from tests.emulator.sdk import secret_credential
from tests.emulator.test_arm import (
    DELEGATION,
    LOG_ANALYTICS_READER,
    RBAC_ADMINISTRATOR,
    SENTINEL_READER,
    Arm,
    assign,
    new_workspace,
)

LOG_ANALYTICS_APP_ID = "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5"
LAG_MS = 1500


@dataclass
class Connector:
    principal_id: str
    client: LogsQueryClient


def logs_client(stand_in: StandIn, app_id: str, secret: str) -> LogsQueryClient:
    credential = secret_credential(stand_in, stand_in.home_tenant_id, app_id, secret)
    # The SDK takes the token audience from the endpoint unless told; the stand-in's endpoint is not
    # the real one, so the audience is named (azure-monitor-query 2.0: `audience` keyword).
    return LogsQueryClient(
        credential,
        endpoint=f"{stand_in.vault_url}/v1",
        audience="https://api.loganalytics.io",
        connection_verify=stand_in.ca_bundle,
    )


async def new_connector(graph: GraphServiceClient, stand_in: StandIn, name: str, data_read: bool = True) -> Connector:
    app = await upsert_app(graph, name)
    sp = await upsert_service_principal(graph, str(app.app_id))
    if data_read:
        await grant(graph, str(sp.id), LOG_ANALYTICS_APP_ID, "Data.Read")
    secret = await add_password(graph, str(app.id))
    return Connector(str(sp.id), logs_client(stand_in, str(app.app_id), str(secret.secret_text)))


@pytest.fixture
async def arm(stand_in: StandIn) -> AsyncIterator[Arm]:
    """ARM as the delegate (the stand-in's managed identity) calls it."""
    credential = ManagedIdentityCredential()
    try:
        yield Arm(stand_in, credential)
    finally:
        await credential.close()


@pytest.fixture
def me(stand_in: StandIn) -> str:
    return str(stand_in.info["managed_identity_object_id"])


@pytest.fixture
def lagging(clean_faults: StandIn) -> Iterator[StandIn]:
    clean_faults.set_faults(roleAssignment=LAG_MS)
    yield clean_faults


def query(connector: Connector, workspace: dict[str, str]) -> LogsQueryResult:
    result = connector.client.query_workspace(workspace["customerId"], "print x=1", timespan=timedelta(hours=1))
    assert isinstance(result, LogsQueryResult)  # not a partial result
    return result


async def test_query_is_refused_before_the_role_and_while_it_propagates_then_answered(
    arm: Arm, lagging: StandIn, graph: GraphServiceClient, me: str, unique: str
) -> None:
    stand_in = lagging
    workspace = new_workspace(stand_in, unique)
    assign(stand_in, workspace["id"], RBAC_ADMINISTRATOR, me, condition=DELEGATION)
    await asyncio.sleep(LAG_MS / 1000)  # the delegation itself propagates too
    connector = await new_connector(graph, stand_in, f"la-connector-{unique}")

    with pytest.raises(HttpResponseError) as before:
        query(connector, workspace)
    assert before.value.status_code == 403 and "InsufficientAccessError" in str(before.value)

    created = await arm.put_assignment(workspace["id"], SENTINEL_READER, connector.principal_id)
    assert created.status_code == 201
    with pytest.raises(HttpResponseError) as during:
        query(connector, workspace)
    assert during.value.status_code == 403

    await asyncio.sleep(LAG_MS / 1000)
    result = query(connector, workspace)
    assert result.status == LogsQueryStatus.SUCCESS
    table = result.tables[0]
    assert table.name == "PrimaryResult" and table.columns == ["x"] and [list(r) for r in table.rows] == [[1]]


async def test_log_analytics_reader_on_the_resource_group_allows_queries(
    stand_in: StandIn, graph: GraphServiceClient, unique: str
) -> None:
    workspace = new_workspace(stand_in, unique)
    connector = await new_connector(graph, stand_in, f"la-reader-{unique}")
    assign(stand_in, workspace["id"].split("/providers/")[0], LOG_ANALYTICS_READER, connector.principal_id)
    result = connector.client.query_workspace(workspace["customerId"], "Heartbeat | take 1", timespan=timedelta(days=1))
    assert isinstance(result, LogsQueryResult) and result.tables[0].name == "PrimaryResult"


async def test_a_token_without_data_read_is_insufficient_access(
    stand_in: StandIn, graph: GraphServiceClient, unique: str
) -> None:
    workspace = new_workspace(stand_in, unique)
    connector = await new_connector(graph, stand_in, f"la-noperm-{unique}", data_read=False)
    assign(stand_in, workspace["id"], SENTINEL_READER, connector.principal_id)
    with pytest.raises(HttpResponseError) as refused:
        query(connector, workspace)
    assert refused.value.status_code == 403 and "UnauthorizedClient" in str(refused.value)


async def test_an_unknown_workspace_is_not_found(stand_in: StandIn, graph: GraphServiceClient, unique: str) -> None:
    connector = await new_connector(graph, stand_in, f"la-lost-{unique}")
    with pytest.raises(HttpResponseError) as missing:
        query(connector, {"customerId": str(uuid.uuid4())})
    assert missing.value.status_code == 404 and "WorkspaceNotFoundError" in str(missing.value)


def test_no_token_is_authentication_failed(stand_in: StandIn, unique: str) -> None:
    workspace = new_workspace(stand_in, unique)
    url = f"{stand_in.vault_url}/v1/workspaces/{workspace['customerId']}/query"
    with httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_bundle)) as http:
        response = http.post(url, json={"query": "print x=1"})
        unknown_path = http.post(f"{stand_in.vault_url}/v1/workspaces/{workspace['customerId']}/nothing", json={})
    assert response.status_code == 401 and response.json()["error"]["code"] == "AuthenticationFailed"
    assert unknown_path.status_code == 404 and unknown_path.json()["error"]["code"] == "PathNotFoundError"
