"""The HTTP API end to end: registered functions, real SDKs over HTTPS, the stand-in behind them."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.functions.decorators.http import HttpTrigger
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.storage.blob.aio import ContainerClient

from shared.adapters.locks import CONTAINER
from shared.entrypoints.openapi import openapi_document
from tests.azurite import Azurite
from tests.emulator.directory import GRAPH_APP_ID
from tests.functions.conftest import FABRIKAM, REGISTERED, Api, body_of

PROFILE_ROLES = {
    "AuditLog.Read.All", "SecurityAlert.Read.All", "SecurityIncident.Read.All", "ThreatHunting.Read.All",
    "User.Read.All", "Device.Read.All", "Group.Read.All", "IdentityRiskyUser.Read.All",
    "IdentityRiskEvent.Read.All", "Policy.Read.All",
}  # fmt: skip
NORTHWIND = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"


def stored_secret(api: Api, tenant: str, integration: str) -> str:
    """Read the stored client secret as a downstream consumer would (with the vault's own SDK)."""
    name = f"{api.services.settings.name_prefix}-{tenant}-{integration}-client-secret"
    client = SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    value = client.get_secret(name).value
    assert value
    return value


def token_roles(api: Api, tenant: str, client_id: str, secret: str, scope: str) -> set[str]:
    credential = ClientSecretCredential(
        tenant, client_id, secret, authority=api.stand_in.authority, disable_instance_discovery=True,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    claims = jwt.decode(credential.get_token(scope).token, options={"verify_signature": False})
    return set(claims.get("roles", []))


async def test_first_put_registers_consents_and_stores_a_working_credential(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    response = await api.put(tenant, "m365-defender")

    assert response.status_code == 201
    body = body_of(response)
    assert body["outcome"] == "created"
    assert all(p["granted"] for p in body["permissions"]) and len(body["permissions"]) == len(PROFILE_ROLES)
    assert body["credential"]["verified"] is True and body["drift"] == []
    references = body["keyVaultReferences"]
    assert all(
        ref.startswith(f"@Microsoft.KeyVault(SecretUri={api.stand_in.vault_url}/secrets/")
        for ref in references.values()
    )
    assert all(ref.endswith("/)") for ref in references.values())  # versionless: rotation reaches consumers

    secret = stored_secret(api, tenant, "m365-defender")
    assert secret not in response.get_body().decode()
    roles = token_roles(api, tenant, body["application"]["clientId"], secret, "https://graph.microsoft.com/.default")
    assert roles == PROFILE_ROLES
    [app] = api.apps()
    assert app["signInAudience"] == "AzureADMyOrg" and len(app["passwordKeyIds"]) == 1


async def test_second_identical_put_creates_nothing(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    first = await api.put(tenant, "sentinel")
    assert first.status_code == 201
    before = api.stand_in.state()

    second = await api.put(tenant, "sentinel")

    assert second.status_code == 200
    assert body_of(second)["outcome"] == "complete" and body_of(second)["changes"] == []
    after = api.stand_in.state()
    assert after["tenants"] == before["tenants"]
    assert after["vault"]["secrets"] == before["vault"]["secrets"]


async def test_replication_lag_and_throttling_are_ridden_out(api: Api) -> None:
    api.stand_in.set_faults(
        [
            {
                "kind": "status",
                "service": "graph",
                "method": "POST",
                "path": "addPassword",
                "status": 429,
                "retry_after": 1,
                "count": 1,
            },
            {
                "kind": "status",
                "service": "graph",
                "method": "POST",
                "path": r"\$batch",
                "status": 429,
                "retry_after": 1,
                "count": 1,
            },
        ],
        application=700,
        servicePrincipal=700,
        password=900,
        appRoleAssignment=500,
    )
    response = await api.put(api.stand_in.home_tenant_id, "m365-defender")
    assert response.status_code == 201, body_of(response)
    assert [rule["fired"] for rule in api.stand_in.admin("GET", "/faults")["rules"]] == [1, 1]
    [app] = api.apps()
    assert len(app["passwordKeyIds"]) == 1


async def test_lost_add_password_response_leaves_exactly_one_credential(api: Api) -> None:
    api.stand_in.set_faults([{"kind": "drop", "service": "graph", "path": "addPassword", "drop": "after", "count": 1}])
    response = await api.put(api.stand_in.home_tenant_id, "m365-defender")
    assert response.status_code == 201, body_of(response)
    [app] = api.apps()
    assert app["passwordKeyIds"] == [body_of(response)["credential"]["keyId"]]


async def test_failed_vault_write_removes_the_new_secret_and_a_rerun_converges(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    api.stand_in.set_faults(
        [{"kind": "status", "service": "vault", "method": "PUT", "path": "client-secret", "status": 500, "count": 20}]
    )
    failed = await api.put(tenant, "m365-defender")
    assert failed.status_code == 502
    assert failed.mimetype == "application/problem+json"
    assert body_of(failed)["upstreamService"] == "keyvault"
    [app] = api.apps()
    assert app["passwordKeyIds"] == []  # rolled back: nobody could ever know that secret

    api.stand_in.clear_faults()
    rerun = await api.put(tenant, "m365-defender")
    assert rerun.status_code == 200 and body_of(rerun)["outcome"] == "updated"
    [app] = api.apps()
    assert app["passwordKeyIds"] == [body_of(rerun)["credential"]["keyId"]]


async def test_get_reports_live_state_and_drift(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    assert (await api.get(tenant, "sentinel")).status_code == 404
    created = body_of(await api.put(tenant, "sentinel"))
    state = body_of(await api.get(tenant, "sentinel"))
    assert state["drift"] == [] and state["application"] == created["application"]
    assert state["credential"]["keyId"] == created["credential"]["keyId"]


async def test_a_permission_granted_by_hand_beyond_the_profile_is_reported_as_drift(api: Api) -> None:
    # An admin (or an attacker with the rights) adds a role the catalog never offered: the service does not
    # revoke what it did not grant, but it says so, by name, until someone looks.
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "m365-defender"))
    directory = api.services.directory
    assert directory is not None
    graph = await directory.resource_api(tenant, GRAPH_APP_ID)
    assert graph is not None
    await directory.grant(tenant, created["servicePrincipalId"], [(graph.object_id, graph.roles_by_value["Mail.Read"])])
    state = body_of(await api.get(tenant, "m365-defender"))
    assert state["drift"] == ["permission granted outside the profile: Mail.Read"]


async def test_unreachable_customer_tenant_is_refused_and_nothing_is_created(api: Api) -> None:
    response = await api.put(NORTHWIND, "m365-defender")
    assert response.status_code == 403
    assert body_of(response)["type"].endswith("/tenant-not-allowed")
    prefix = api.services.settings.name_prefix + "-"
    northwind = api.stand_in.state()["tenants"][NORTHWIND]["applications"]
    assert [a for a in northwind if str(a.get("uniqueName") or "").startswith(prefix)] == []


async def test_catalog_and_openapi(api: Api) -> None:
    catalog = body_of(await api.call("list_integrations", "GET", "integrations"))
    assert [i["id"] for i in catalog["integrations"]] == [
        "m365-defender",
        "defender-endpoint",
        "defender-endpoint-live-response",
        "sentinel",
    ]
    document = body_of(await api.call("openapi", "GET", "openapi.json"))
    assert document == json.loads(json.dumps(openapi_document()))


def test_openapi_document_describes_exactly_the_registered_routes() -> None:
    registered = set()
    for function in REGISTERED:
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger):
            registered |= {("/" + str(trigger.route), str(m).split(".")[-1].lower()) for m in trigger.methods or []}
    documented = {
        (path, method)
        for path, item in openapi_document()["paths"].items()
        for method in item
        if method in ("get", "put", "post", "delete", "patch")
    }
    assert documented == registered


BAD_INPUTS: list[tuple[str, str, bytes, dict[str, str], int, str]] = [
    ("not-a-guid", "m365-defender", b"", {}, 400, "tenantId"),
    ("00000000-0000-0000-0000-000000000000", "m365-defender", b"", {}, 400, "tenantId"),
    ("{5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10}", "m365-defender", b"", {}, 400, "tenantId"),
    ("HOME", "no-such-integration", b"", {}, 404, ""),
    ("HOME", "../../secrets", b"", {}, 400, "integration"),
    ("HOME", "m365-defender", b"{not json", {"content-type": "application/json"}, 400, "body"),
    ("HOME", "m365-defender", b"[1]", {"content-type": "application/json"}, 400, "body"),
    (
        "HOME",
        "m365-defender",
        b'{"permissions": ["Directory.ReadWrite.All"]}',
        {"content-type": "application/json"},
        400,
        "permissions",
    ),
    (
        "HOME",
        "m365-defender",
        b'{"secretLifetimeDays": 0}',
        {"content-type": "application/json"},
        400,
        "secretLifetimeDays",
    ),
    (
        "HOME",
        "m365-defender",
        b'{"secretLifetimeDays": 9999}',
        {"content-type": "application/json"},
        400,
        "secretLifetimeDays",
    ),
    (
        "HOME",
        "m365-defender",
        b'{"secretLifetimeDays": true}',
        {"content-type": "application/json"},
        400,
        "secretLifetimeDays",
    ),
    (
        "HOME",
        "m365-defender",
        b'{"displayName": "a\\u0000b"}',
        {"content-type": "application/json"},
        400,
        "displayName",
    ),
    (
        "HOME",
        "m365-defender",
        b'{"displayName": "' + b"x" * 121 + b'"}',
        {"content-type": "application/json"},
        400,
        "displayName",
    ),
    ("HOME", "m365-defender", b'{"notes": "x"}', {"content-type": "text/plain"}, 415, ""),
    ("HOME", "m365-defender", b'{"notes": "' + b"x" * 20000 + b'"}', {"content-type": "application/json"}, 413, ""),
]


@pytest.mark.parametrize(("tenant", "integration", "body", "headers", "status", "field"), BAD_INPUTS)
async def test_bad_input_is_a_named_4xx_and_creates_nothing(
    api: Api, tenant: str, integration: str, body: bytes, headers: dict[str, str], status: int, field: str
) -> None:
    tenant = api.stand_in.home_tenant_id if tenant == "HOME" else tenant
    before = api.stand_in.state()
    response = await api.call(
        "onboard_integration", "PUT", f"tenants/{tenant}/integrations/{integration}",
        {"tenantId": tenant, "integration": integration}, body, headers,
    )  # fmt: skip
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem: dict[str, Any] = body_of(response)
    assert problem["status"] == status and problem["type"].startswith("https://")
    if field:
        assert problem["field"] == field
    after = api.stand_in.state()
    assert after["tenants"] == before["tenants"] and after["vault"] == before["vault"]


async def test_no_secret_reaches_any_log_line_at_debug(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    tenant = api.stand_in.home_tenant_id
    api.stand_in.set_faults(password=600, appRoleAssignment=300)
    with caplog.at_level(logging.DEBUG):
        response = await api.put(tenant, "m365-defender")
        state = await api.get(tenant, "m365-defender")
    assert response.status_code == 201
    secret = stored_secret(api, tenant, "m365-defender")
    assert len(caplog.records) > 20  # the SDKs really logged at DEBUG
    for record in caplog.records:
        assert secret not in record.getMessage()
        assert secret not in str(record.__dict__)
    assert secret not in response.get_body().decode() and secret not in state.get_body().decode()


async def test_secret_lifetime_is_clamped_to_the_tenants_app_management_policy(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    restrictions = [
        {
            "restrictionType": "passwordLifetime",
            "maxLifetime": "P30D",
            "restrictForAppsCreatedAfterDateTime": "2019-01-01T00:00:00Z",
        }
    ]
    api.stand_in.admin(
        "PUT", f"/tenants/{tenant}/app-management-policy",
        {"isEnabled": True, "applicationRestrictions": {"passwordCredentials": restrictions}},
    )  # fmt: skip
    try:
        response = await api.put(tenant, "sentinel", b'{"secretLifetimeDays": 365}')
    finally:
        api.stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", {"isEnabled": False})
    assert response.status_code == 201, body_of(response)
    expires = datetime.fromisoformat(body_of(response)["credential"]["expires"].replace("Z", "+00:00"))
    assert timedelta(days=29) < expires - datetime.now(UTC) <= timedelta(days=30)


# --- issue 13: refusals come before any work, and one request has one correlation id ---


async def lock_blobs(azurite: Azurite, tenant: str) -> list[str]:
    """The registration lock blobs Storage holds for `tenant` (locks are `{tenant}/{integration}.lock`)."""
    async with ContainerClient.from_connection_string(azurite.connection_string, CONTAINER) as container:
        try:
            return [blob.name async for blob in container.list_blobs(name_starts_with=f"{tenant}/")]
        except ResourceNotFoundError:
            return []  # no lock was ever taken: the container is made with the first


async def test_get_for_a_tenant_that_has_not_consented_is_403_with_the_consent_url(
    vendor: tuple[Api, str, str],
) -> None:
    # PUT, DELETE and rotate already answer 403 here; GET read Graph first and failed with a 500.
    api, provisioner, _ = vendor
    response = await api.get(FABRIKAM, "sentinel")
    assert response.status_code == 403, response.get_body()[:300]
    assert response.mimetype == "application/problem+json"
    problem = body_of(response)
    assert problem["type"].endswith("/consent-required")
    assert problem["consentUrl"] == f"{api.stand_in.authority}/{FABRIKAM}/adminconsent?client_id={provisioner}"


async def test_a_500_names_the_callers_correlation_id_in_header_body_and_log(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def bug(tenant: str, integration: str) -> dict[str, Any]:
        raise RuntimeError("a bug")

    monkeypatch.setattr(api.services.status, "status", bug)
    tenant = api.stand_in.home_tenant_id
    route = {"tenantId": tenant, "integration": "sentinel"}
    path = f"tenants/{tenant}/integrations/sentinel"
    with caplog.at_level(logging.ERROR, logger="shared"):
        given = await api.call("get_integration", "GET", path, route, headers={"x-correlation-id": "caller-7"})
        fresh = await api.call("get_integration", "GET", path, route)
    assert given.status_code == fresh.status_code == 500
    assert given.headers["x-correlation-id"] == body_of(given)["correlationId"] == "caller-7"
    minted = fresh.headers["x-correlation-id"]
    assert body_of(fresh)["correlationId"] == minted and minted != "caller-7"
    logged = [r.getMessage() for r in caplog.records if r.exc_info]
    assert len(logged) == 2 and "caller-7" in logged[0] and minted in logged[1]
    assert "a bug" not in given.get_body().decode()  # the caller learns the id, not the failure


async def rotate_leaves_no_lock(api: Api, azurite: Azurite, tenant: str) -> dict[str, Any]:
    """POST rotate for a tenant this service cannot act in: refused, with no lock blob left behind."""
    before = await lock_blobs(azurite, tenant)
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate",
        {"tenantId": tenant, "integration": "sentinel"},
    )  # fmt: skip
    assert response.status_code >= 400 and response.mimetype == "application/problem+json"
    assert await lock_blobs(azurite, tenant) == before == []
    problem: dict[str, Any] = body_of(response)
    return problem


# A lock blob per random tenant id would let any caller with a key fill the storage account.
async def test_rotate_for_another_tenant_is_refused_before_any_lock_is_taken(api: Api, azurite: Azurite) -> None:
    problem = await rotate_leaves_no_lock(api, azurite, str(uuid.uuid4()))
    assert problem["status"] == 403 and problem["type"].endswith("/tenant-not-allowed")


async def test_rotate_for_an_unconsented_tenant_is_refused_before_any_lock_is_taken(
    vendor: tuple[Api, str, str], azurite: Azurite
) -> None:
    api, _, _ = vendor
    problem = await rotate_leaves_no_lock(api, azurite, FABRIKAM)
    assert problem["status"] == 403 and problem["type"].endswith("/consent-required")
    await rotate_leaves_no_lock(api, azurite, str(uuid.uuid4()))  # a directory Entra does not know
