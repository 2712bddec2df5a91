"""Small Graph helpers for the stand-in's tests, written with the real msgraph-sdk."""

from __future__ import annotations

from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.models.app_role_assignment import AppRoleAssignment
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.service_principal import ServicePrincipal
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"


def create_if_missing() -> RequestConfiguration[None]:
    config: RequestConfiguration[None] = RequestConfiguration()
    config.headers.add("Prefer", "create-if-missing")
    return config


async def upsert_app(graph: GraphServiceClient, unique_name: str, **props: object) -> Application:
    """Create (or find) an application by uniqueName, returning its full object."""
    body = Application(display_name=props.pop("display_name", f"app {unique_name}"), **props)
    created = await graph.applications_with_unique_name(unique_name).patch(
        body, request_configuration=create_if_missing()
    )
    if created is not None:
        return created
    found = await graph.applications_with_unique_name(unique_name).get()
    assert found is not None
    return found


async def upsert_service_principal(graph: GraphServiceClient, app_id: str) -> ServicePrincipal:
    created = await graph.service_principals_with_app_id(app_id).patch(
        ServicePrincipal(), request_configuration=create_if_missing()
    )
    if created is not None:
        return created
    found = await graph.service_principals_with_app_id(app_id).get()
    assert found is not None
    return found


async def add_password(graph: GraphServiceClient, app_object_id: str, **props: object) -> PasswordCredential:
    body = AddPasswordPostRequestBody(password_credential=PasswordCredential(**props))
    credential = await graph.applications.by_application_id(app_object_id).add_password.post(body)
    assert credential is not None and credential.secret_text
    return credential


async def role_id(graph: GraphServiceClient, resource_app_id: str, value: str) -> tuple[str, str]:
    """(resource service principal id, app role id) for a permission value, resolved at run time."""
    resource = await graph.service_principals_with_app_id(resource_app_id).get()
    assert resource is not None and resource.app_roles is not None
    role = next(r for r in resource.app_roles if r.value == value)
    return str(resource.id), str(role.id)


async def grant(graph: GraphServiceClient, principal_id: str, resource_app_id: str, value: str) -> AppRoleAssignment:
    resource_id, app_role_id = await role_id(graph, resource_app_id, value)
    assignment = await graph.service_principals.by_service_principal_id(resource_id).app_role_assigned_to.post(
        AppRoleAssignment(principal_id=principal_id, resource_id=resource_id, app_role_id=app_role_id)
    )
    assert assignment is not None
    return assignment


async def federated_app(graph: GraphServiceClient, stand_in: StandIn, unique: str, subject: str) -> str:
    """A multi-tenant provisioner app trusting `subject` through a federated credential; its appId."""
    app = await upsert_app(graph, f"provisioner-{unique}", sign_in_audience="AzureADMultipleOrgs")
    await graph.applications.by_application_id(str(app.id)).federated_identity_credentials.post(
        FederatedIdentityCredential(
            name="function-identity",
            issuer=f"https://login.microsoftonline.com/{stand_in.home_tenant_id}/v2.0",
            subject=subject,
            audiences=["api://AzureADTokenExchange"],
        )
    )
    return str(app.app_id)
