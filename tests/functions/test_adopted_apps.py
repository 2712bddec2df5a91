"""A member of a customer tenant squats the registration's predictable name: the vendor's PUT must not adopt it.

The attacker is what any member of a tenant is by default: a principal that may register apps and
manage the ones it owns (modelled as an app consented with Application.ReadWrite.OwnedBy only, which
Graph defines as exactly that). It registers the app under `{NAME_PREFIX}-{integration}`, adds this
service's principal as a co-owner, and keeps a client secret of its own.
"""

from __future__ import annotations

import uuid

from azure.identity.aio import ManagedIdentityCredential
from msgraph.generated.applications.item.add_password.add_password_post_request_body import (
    AddPasswordPostRequestBody,
)
from msgraph.generated.models.application import Application
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.reference_create import ReferenceCreate

from emulator.launcher import StandIn
from tests.emulator.directory import GRAPH_APP_ID, add_password, create_if_missing, upsert_app
from tests.emulator.sdk import async_secret_credential, graph_client
from tests.functions.conftest import NORTHWIND, Api, body_of

INTEGRATION = "m365-defender"


async def an_app_registering_member(stand_in: StandIn, tenant: str) -> tuple[str, str]:
    """A principal in `tenant` that may only register apps and own them: (client id, secret)."""
    identity = ManagedIdentityCredential()
    try:
        home = graph_client(stand_in, identity)
        app = await upsert_app(home, f"member-{uuid.uuid4().hex[:8]}", sign_in_audience="AzureADMultipleOrgs")
        secret = await add_password(home, str(app.id))
    finally:
        await identity.close()
    stand_in.admin(
        "POST", f"/tenants/{tenant}/consent",
        {"appId": str(app.app_id), "roles": {GRAPH_APP_ID: ["Application.ReadWrite.OwnedBy"]}},
    )  # fmt: skip
    return str(app.app_id), str(secret.secret_text)


async def test_a_squatted_app_co_owned_by_the_service_is_refused_and_nothing_is_granted(
    vendor: tuple[Api, str, str], stand_in: StandIn
) -> None:
    api, provisioner, _ = vendor
    member_id, member_secret = await an_app_registering_member(stand_in, NORTHWIND)
    member = async_secret_credential(stand_in, NORTHWIND, member_id, member_secret)
    graph = graph_client(stand_in, member)
    try:
        unique = f"{api.services.settings.name_prefix}-{INTEGRATION}"
        squatted = await graph.applications_with_unique_name(unique).patch(
            Application(display_name="Microsoft 365 and Defender"), request_configuration=create_if_missing()
        )
        assert squatted is not None
        service = await graph.service_principals_with_app_id(provisioner).get()
        assert service is not None
        await graph.applications.by_application_id(str(squatted.id)).owners.ref.post(
            ReferenceCreate(odata_id=f"https://graph.microsoft.com/v1.0/directoryObjects/{service.id}")
        )
        kept = await graph.applications.by_application_id(str(squatted.id)).add_password.post(
            AddPasswordPostRequestBody(password_credential=PasswordCredential(display_name="backup"))
        )
        assert kept is not None and kept.secret_text
    finally:
        await member.close()

    refused = await api.put(NORTHWIND, INTEGRATION)

    assert refused.status_code == 409, body_of(refused)
    problem = body_of(refused)
    assert problem["type"].endswith("/registration-not-owned")
    assert problem["appObjectId"] == str(squatted.id)
    assert any("owner(s) other than this service" in reason for reason in problem["reasons"])
    # Nothing was granted, nor even a service principal made for it (which a token would need).
    tenant = stand_in.state()["tenants"][NORTHWIND]
    assert not any(sp["appId"] == str(squatted.app_id) for sp in tenant["servicePrincipals"])
    # And no secret of the vendor's names it.
    state = body_of(await api.get(NORTHWIND, INTEGRATION))
    assert state["keyVaultReferences"]["clientSecret"] is None
    assert "application not provably this service's alone: 1 owner(s) other than this service" in state["drift"]


async def test_the_services_own_registration_still_converges_on_every_put(vendor: tuple[Api, str, str]) -> None:
    api, _, _ = vendor
    assert (await api.put(NORTHWIND, INTEGRATION)).status_code == 201
    again = await api.put(NORTHWIND, INTEGRATION)
    assert again.status_code == 200 and body_of(again)["outcome"] == "complete"
