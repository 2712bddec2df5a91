"""Microsoft Graph in the stand-in, driven only through the real msgraph-sdk."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from azure.identity.aio import ManagedIdentityCredential
from kiota_abstractions.base_request_configuration import RequestConfiguration
from kiota_abstractions.request_information import RequestInformation
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.applications.item.remove_password.remove_password_post_request_body import (
    RemovePasswordPostRequestBody,
)
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.required_resource_access import RequiredResourceAccess
from msgraph.generated.models.resource_access import ResourceAccess
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_service_client import GraphServiceClient
from msgraph_core.requests.batch_request_content import BatchRequestContent
from msgraph_core.requests.batch_request_item import BatchRequestItem

from emulator.launcher import StandIn
from tests.emulator.directory import (
    GRAPH_APP_ID,
    add_password,
    create_if_missing,
    grant,
    role_id,
    upsert_app,
    upsert_service_principal,
)
from tests.emulator.sdk import graph_client, secret_credential

DEFENDER_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"


def error_code(error: ODataError) -> str:
    assert error.error is not None
    return str(error.error.code)


def error_message(error: ODataError) -> str:
    assert error.error is not None
    return str(error.error.message)


async def count_apps(graph: GraphServiceClient, unique_name: str) -> int:
    config = RequestConfiguration(
        query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter=f"uniqueName eq '{unique_name}'"
        )
    )
    page = await graph.applications.get(request_configuration=config)
    assert page is not None and page.value is not None
    return len(page.value)


async def test_upsert_by_unique_name_creates_once_then_answers_204(graph: GraphServiceClient, unique: str) -> None:
    name = f"upsert-{unique}"
    created = await graph.applications_with_unique_name(name).patch(
        Application(display_name="Upsert", sign_in_audience="AzureADMyOrg"), request_configuration=create_if_missing()
    )
    assert created is not None and created.unique_name == name and created.app_id
    assert created.sign_in_audience == "AzureADMyOrg"

    second = await graph.applications_with_unique_name(name).patch(
        Application(display_name="Upsert"), request_configuration=create_if_missing()
    )

    assert second is None  # 204 No Content
    assert await count_apps(graph, name) == 1


async def test_upsert_without_prefer_header_is_404_for_a_missing_app(graph: GraphServiceClient, unique: str) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.applications_with_unique_name(f"missing-{unique}").patch(Application(display_name="x"))
    assert raised.value.response_status_code == 404
    assert error_code(raised.value) == "Request_ResourceNotFound"


async def test_service_principal_upsert_by_app_id(graph: GraphServiceClient, unique: str) -> None:
    app = await upsert_app(graph, f"sp-{unique}")
    created = await graph.service_principals_with_app_id(app.app_id).patch(
        ServicePrincipal(), request_configuration=create_if_missing()
    )
    found = await graph.service_principals_with_app_id(app.app_id).get()
    assert created is not None and created.app_id == app.app_id
    assert created.service_principal_type == "Application"
    # A second upsert would be a write to a principal this caller does not own (test_graph_first_contact).
    assert found is not None and found.id == created.id


async def test_creator_becomes_owner(graph: GraphServiceClient, stand_in: StandIn, unique: str) -> None:
    app = await upsert_app(graph, f"owner-{unique}")
    owners = await graph.applications.by_application_id(str(app.id)).owners.get()
    assert owners is not None and owners.value is not None
    assert [o.id for o in owners.value] == [stand_in.info["managed_identity_object_id"]]


async def test_required_resource_access_round_trips(graph: GraphServiceClient, unique: str) -> None:
    _, app_role_id = await role_id(graph, GRAPH_APP_ID, "User.Read.All")
    app = await upsert_app(graph, f"rra-{unique}")
    await graph.applications.by_application_id(str(app.id)).patch(
        Application(
            required_resource_access=[
                RequiredResourceAccess(
                    resource_app_id=GRAPH_APP_ID,
                    resource_access=[ResourceAccess(id=uuid.UUID(app_role_id), type="Role")],
                )
            ]
        )
    )
    read = await graph.applications.by_application_id(str(app.id)).get()
    assert read is not None and read.required_resource_access is not None
    access = read.required_resource_access[0]
    assert access.resource_app_id == GRAPH_APP_ID
    assert access.resource_access is not None
    assert str(access.resource_access[0].id) == app_role_id


async def test_grant_then_duplicate_grant_is_the_documented_400(graph: GraphServiceClient, unique: str) -> None:
    app = await upsert_app(graph, f"grant-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    assignment = await grant(graph, str(sp.id), GRAPH_APP_ID, "AuditLog.Read.All")
    assert assignment.principal_id is not None and str(assignment.principal_id) == sp.id

    with pytest.raises(ODataError) as raised:
        await grant(graph, str(sp.id), GRAPH_APP_ID, "AuditLog.Read.All")
    assert raised.value.response_status_code == 400
    assert error_code(raised.value) == "Request_BadRequest"
    assert error_message(raised.value) == "Permission being assigned already exists on the object."

    granted = await graph.service_principals.by_service_principal_id(str(sp.id)).app_role_assignments.get()
    assert granted is not None and granted.value is not None and len(granted.value) == 1


async def test_granting_an_unknown_role_is_refused(graph: GraphServiceClient, unique: str) -> None:
    app = await upsert_app(graph, f"badrole-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    resource_id, _ = await role_id(graph, GRAPH_APP_ID, "User.Read.All")
    with pytest.raises(ODataError) as raised:
        await graph.service_principals.by_service_principal_id(resource_id).app_role_assigned_to.post(
            AppRoleAssignment(principal_id=sp.id, resource_id=resource_id, app_role_id=uuid.uuid4())
        )
    assert raised.value.response_status_code == 400
    assert "Permission being assigned was not found" in error_message(raised.value)


async def test_owned_by_cannot_change_an_app_it_does_not_own(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    # A second automation identity with Application.ReadWrite.OwnedBy creates its own app...
    other = await upsert_app(graph, f"other-automation-{unique}")
    other_sp = await upsert_service_principal(graph, str(other.app_id))
    await grant(graph, str(other_sp.id), GRAPH_APP_ID, "Application.ReadWrite.OwnedBy")
    secret = await add_password(graph, str(other.id))
    credential = secret_credential(stand_in, stand_in.home_tenant_id, str(other.app_id), str(secret.secret_text))
    other_graph = graph_client(stand_in, credential)
    theirs = await upsert_app(other_graph, f"theirs-{unique}")

    # ...which the managed identity, not an owner, may read but not change.
    assert (await graph.applications.by_application_id(str(theirs.id)).get()) is not None
    with pytest.raises(ODataError) as raised:
        await graph.applications.by_application_id(str(theirs.id)).patch(Application(notes="not yours"))
    assert raised.value.response_status_code == 403
    assert error_code(raised.value) == "Authorization_RequestDenied"
    assert error_message(raised.value) == "Insufficient privileges to complete the operation."

    # And without AppRoleAssignment.ReadWrite.All the other identity cannot grant anything.
    their_sp = await upsert_service_principal(other_graph, str(theirs.app_id))
    with pytest.raises(ODataError) as denied:
        await grant(other_graph, str(their_sp.id), GRAPH_APP_ID, "User.Read.All")
    assert denied.value.response_status_code == 403


async def test_missing_role_is_403_for_organization(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.organization.get()
    assert raised.value.response_status_code == 403
    assert error_code(raised.value) == "Authorization_RequestDenied"


async def test_remove_password_takes_the_credential_off_the_app(graph: GraphServiceClient, unique: str) -> None:
    app = await upsert_app(graph, f"pw-{unique}")
    first = await add_password(graph, str(app.id), display_name="first")
    second = await add_password(graph, str(app.id), display_name="second")
    assert first.hint == str(first.secret_text)[:3]
    await graph.applications.by_application_id(str(app.id)).remove_password.post(
        RemovePasswordPostRequestBody(key_id=first.key_id)
    )
    read = await graph.applications.by_application_id(str(app.id)).get()
    assert read is not None and read.password_credentials is not None
    assert [c.key_id for c in read.password_credentials] == [second.key_id]
    assert all(c.secret_text is None for c in read.password_credentials)


async def test_app_management_policy_caps_secret_lifetime(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"policy-{unique}")
    tenant = stand_in.home_tenant_id
    restrictions = [
        {
            "restrictionType": "passwordLifetime",
            "maxLifetime": "P90D",
            "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
        }
    ]
    stand_in.admin(
        "PUT",
        f"/tenants/{tenant}/app-management-policy",
        {"isEnabled": True, "applicationRestrictions": {"passwordCredentials": restrictions}},
    )
    try:
        policy = await graph.policies.default_app_management_policy.get()
        assert policy is not None and policy.is_enabled is True
        with pytest.raises(ODataError) as raised:
            await add_password(graph, str(app.id))  # default lifetime: two years
        assert raised.value.response_status_code == 400
        assert error_code(raised.value) == "CredentialInvalidLifetimeAsPerAppPolicy"
        assert raised.value.error is not None and raised.value.error.details is not None
        assert raised.value.error.details[0].code == "InvalidKeyEndDate"

        now = datetime.fromisoformat(stand_in.admin("GET", "/clock")["now"])  # tests may have moved it
        within = await add_password(graph, str(app.id), end_date_time=now + timedelta(days=60))
        assert within.key_id is not None

        forbid = [
            {"restrictionType": "passwordAddition", "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z"}
        ]
        stand_in.admin(
            "PUT",
            f"/tenants/{tenant}/app-management-policy",
            {"applicationRestrictions": {"passwordCredentials": forbid}},
        )
        with pytest.raises(ODataError) as forbidden:
            await add_password(graph, str(app.id), end_date_time=now + timedelta(days=1))
        assert error_code(forbidden.value) == "CredentialTypeNotAllowedAsPerAppPolicy"
    finally:
        stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", {"isEnabled": False})


def relative_batch_item(info: RequestInformation, request_id: str, graph_url: str) -> BatchRequestItem:
    """msgraph-core keeps absolute URLs in batch items, which Graph refuses
    (microsoftgraph/msgraph-sdk-python#1015, msgraph-sdk-python-core#1116); Graph wants them relative."""
    item = BatchRequestItem(info, id=request_id)
    item.url = item.url.removeprefix(graph_url)
    return item


async def batch_grants(
    graph: GraphServiceClient, stand_in: StandIn, principal_id: str, values: list[str], relative: bool = True
) -> dict[str, int]:
    batch = BatchRequestContent()
    for value in values:
        resource_id, app_role_id = await role_id(graph, GRAPH_APP_ID, value)
        info = graph.service_principals.by_service_principal_id(
            resource_id
        ).app_role_assigned_to.to_post_request_information(
            AppRoleAssignment(principal_id=principal_id, resource_id=resource_id, app_role_id=app_role_id)
        )
        item = relative_batch_item(info, value, stand_in.graph_url) if relative else BatchRequestItem(info, id=value)
        batch.add_request(value, item)
    responses = await graph.batch.post(batch)
    assert responses is not None
    return {item_id: int(item.status) for item_id, item in (responses.responses or {}).items()}


async def test_batch_grants_in_one_round_trip(graph: GraphServiceClient, stand_in: StandIn, unique: str) -> None:
    app = await upsert_app(graph, f"batch-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    values = ["User.Read.All", "Group.Read.All", "Device.Read.All"]

    statuses = await batch_grants(graph, stand_in, str(sp.id), values)

    assert statuses == dict.fromkeys(values, 201)
    granted = await graph.service_principals.by_service_principal_id(str(sp.id)).app_role_assignments.get()
    assert granted is not None and granted.value is not None and len(granted.value) == 3


async def test_batch_items_with_absolute_urls_fail_as_graph_fails_them(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    app = await upsert_app(graph, f"batch-abs-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    statuses = await batch_grants(graph, stand_in, str(sp.id), ["User.Read.All"], relative=False)
    assert statuses == {"User.Read.All": 400}


async def test_filter_and_paging(graph: GraphServiceClient, unique: str) -> None:
    for index in range(3):
        await upsert_app(graph, f"page-{unique}-{index}", display_name=f"page {unique} {index}")
    config = RequestConfiguration(
        query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter=f"startswith(displayName,'page {unique}')", top=2
        )
    )
    first = await graph.applications.get(request_configuration=config)
    assert first is not None and first.value is not None and len(first.value) == 2
    assert first.odata_next_link
    rest = await graph.applications.with_url(first.odata_next_link).get()
    assert rest is not None and rest.value is not None and len(rest.value) == 1


async def test_unsupported_filter_is_a_400(graph: GraphServiceClient) -> None:
    config = RequestConfiguration(
        query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter="displayName ne 'x' or 1 eq 1"
        )
    )
    with pytest.raises(ODataError) as raised:
        await graph.applications.get(request_configuration=config)
    assert raised.value.response_status_code == 400
    assert error_code(raised.value) == "Request_UnsupportedQuery"


async def test_invalid_object_id_is_a_400(graph: GraphServiceClient) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.applications.by_application_id("not-a-guid").get()
    assert raised.value.response_status_code == 400
    assert error_message(raised.value) == "Invalid object identifier 'not-a-guid'."


async def test_unknown_property_is_refused_and_nothing_is_created(graph: GraphServiceClient, unique: str) -> None:
    body = Application(display_name="x")
    body.additional_data = {"bogusProperty": True}
    with pytest.raises(ODataError) as raised:
        await graph.applications_with_unique_name(f"bogus-{unique}").patch(
            body, request_configuration=create_if_missing()
        )
    assert raised.value.response_status_code == 400
    assert await count_apps(graph, f"bogus-{unique}") == 0


async def test_overlong_display_name_is_refused(graph: GraphServiceClient, unique: str) -> None:
    with pytest.raises(ODataError) as raised:
        await graph.applications.post(Application(display_name="x" * 121, unique_name=f"long-{unique}"))
    assert raised.value.response_status_code == 400
    assert await count_apps(graph, f"long-{unique}") == 0


async def test_unique_name_is_immutable(graph: GraphServiceClient, unique: str) -> None:
    app = await upsert_app(graph, f"immutable-{unique}")
    with pytest.raises(ODataError) as raised:
        await graph.applications.by_application_id(str(app.id)).patch(Application(unique_name=f"renamed-{unique}"))
    assert raised.value.response_status_code == 400


async def test_delete_moves_the_app_to_deleted_items_and_removes_its_service_principal(
    graph: GraphServiceClient, unique: str
) -> None:
    app = await upsert_app(graph, f"delete-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    await graph.applications.by_application_id(str(app.id)).delete()

    with pytest.raises(ODataError) as gone:
        await graph.applications.by_application_id(str(app.id)).get()
    assert gone.value.response_status_code == 404
    with pytest.raises(ODataError):
        await graph.service_principals_with_app_id(str(app.app_id)).get()
    deleted = await graph.directory.deleted_items.by_directory_object_id(str(app.id)).get()
    assert deleted is not None and deleted.id == app.id

    await graph.directory.deleted_items.by_directory_object_id(str(app.id)).delete()
    with pytest.raises(ODataError) as purged:
        await graph.directory.deleted_items.by_directory_object_id(str(app.id)).get()
    assert purged.value.response_status_code == 404


async def test_federated_identity_credentials_crud(graph: GraphServiceClient, stand_in: StandIn, unique: str) -> None:
    app = await upsert_app(graph, f"fic-{unique}", sign_in_audience="AzureADMultipleOrgs")
    credentials = graph.applications.by_application_id(str(app.id)).federated_identity_credentials
    created = await credentials.post(
        FederatedIdentityCredential(
            name="onboarding-identity",
            issuer=f"https://login.microsoftonline.com/{stand_in.home_tenant_id}/v2.0",
            subject=stand_in.info["managed_identity_object_id"],
            audiences=["api://AzureADTokenExchange"],
        )
    )
    assert created is not None and created.id
    listed = await credentials.get()
    assert listed is not None and [c.name for c in listed.value or []] == ["onboarding-identity"]
    with pytest.raises(ODataError) as duplicate:
        await credentials.post(
            FederatedIdentityCredential(name="onboarding-identity", issuer="https://x", subject="y", audiences=["z"])
        )
    assert duplicate.value.response_status_code == 409
    await credentials.by_federated_identity_credential_id(str(created.id)).delete()
    listed = await credentials.get()
    assert listed is not None and listed.value == []


async def test_no_token_is_401_invalid_authentication_token(stand_in: StandIn) -> None:
    class NoToken:
        async def get_token(self, *scopes: str, **kwargs: object) -> object:
            from azure.core.credentials import AccessToken

            return AccessToken("", 0)

    with pytest.raises(ODataError) as raised:
        await graph_client(stand_in, NoToken()).applications.get()  # type: ignore[arg-type]
    assert raised.value.response_status_code == 401
    assert error_code(raised.value) == "InvalidAuthenticationToken"


async def test_a_key_vault_token_is_refused_by_graph(stand_in: StandIn) -> None:
    credential = ManagedIdentityCredential()

    class VaultToken:
        async def get_token(self, *scopes: str, **kwargs: object) -> object:
            return await credential.get_token("https://vault.azure.net/.default")

    try:
        with pytest.raises(ODataError) as raised:
            await graph_client(stand_in, VaultToken()).applications.get()  # type: ignore[arg-type]
        assert raised.value.response_status_code == 401
        assert error_message(raised.value) == "Access token validation failure. Invalid audience."
    finally:
        await credential.close()
