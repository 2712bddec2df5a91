"""Vendor-hosted mode: reaching customer tenants through the federated provisioner app, and offboarding."""

from __future__ import annotations

import uuid

import jwt
import pytest
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from shared import bootstrap
from shared.settings import load_settings
from tests.azurite import Azurite
from tests.functions.conftest import FABRIKAM, NORTHWIND, Api, body_of, consent, provisioner_app, serving


def apps_in(api: Api, tenant: str) -> list[dict[str, object]]:
    prefix = api.services.settings.name_prefix + "-"
    return [
        a
        for a in api.stand_in.state()["tenants"][tenant]["applications"]
        if str(a.get("uniqueName") or "").startswith(prefix)
    ]


def token_claims(api: Api, tenant: str, integration: str) -> dict[str, object]:
    """Read the stored secret as a consumer would and get a token with it."""
    name = f"{api.services.settings.name_prefix}-{tenant}-{integration}-client-secret"
    vault = SecretClient(api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=api.stand_in.ca_bundle)  # fmt: skip
    secret = vault.get_secret(name)
    credential = ClientSecretCredential(
        tenant, (secret.properties.tags or {})["client-id"], str(secret.value), authority=api.stand_in.authority,
        disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    token = credential.get_token("https://api.loganalytics.io/.default")
    return dict(jwt.decode(token.token, options={"verify_signature": False}))


async def test_onboarding_into_two_customer_tenants_from_one_home(vendor: tuple[Api, str, str]) -> None:
    api, _, second = vendor
    for tenant in (NORTHWIND, second):
        response = await api.put(tenant, "sentinel")
        assert response.status_code == 201, body_of(response)
        assert body_of(response)["tenantId"] == tenant
        assert len(apps_in(api, tenant)) == 1
        claims = token_claims(api, tenant, "sentinel")
        assert claims["tid"] == tenant  # the credential lives in, and works in, the customer's tenant
        assert claims["roles"] == ["Data.Read"]
    assert apps_in(api, api.stand_in.home_tenant_id) == []  # nothing leaked into the vendor's own tenant


async def test_unconsented_tenant_gets_403_with_the_consent_url_and_nothing_is_created(
    vendor: tuple[Api, str, str],
) -> None:
    api, provisioner, _ = vendor
    status = body_of(await api.call("tenant_consent", "GET", f"tenants/{FABRIKAM}/consent", {"tenantId": FABRIKAM}))
    assert status["consented"] is False
    assert status["consentUrl"] == f"{api.stand_in.authority}/{FABRIKAM}/adminconsent?client_id={provisioner}"

    response = await api.put(FABRIKAM, "sentinel")
    assert response.status_code == 403
    problem = body_of(response)
    assert problem["type"].endswith("/consent-required") and problem["consentUrl"] == status["consentUrl"]
    assert apps_in(api, FABRIKAM) == []
    assert not any(FABRIKAM in name for name in api.stand_in.state()["vault"]["secrets"])

    consented = body_of(
        await api.call("tenant_consent", "GET", f"tenants/{NORTHWIND}/consent", {"tenantId": NORTHWIND})
    )
    assert consented["consented"] is True and consented["missingRoles"] == []


async def test_the_home_tenant_is_refused_in_vendor_hosted_mode_unless_allowed(
    vendor: tuple[Api, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A caller onboarding customers must not register apps with application permissions over the
    # vendor's own directory: every route that acts on a tenant refuses the home tenant, and nothing is made.
    api, _, _ = vendor
    home = api.stand_in.home_tenant_id
    route = {"tenantId": home, "integration": "sentinel"}
    answers = [
        await api.put(home, "sentinel"),
        await api.get(home, "sentinel"),
        await api.call("rotate_now", "POST", f"tenants/{home}/integrations/sentinel/rotate", route),
        await api.call("offboard_integration", "DELETE", f"tenants/{home}/integrations/sentinel", route),
        await api.call("tenant_consent", "GET", f"tenants/{home}/consent", {"tenantId": home}),
        await api.put(home.upper(), "sentinel"),  # the same directory id in another spelling
    ]
    for response in answers:
        assert response.status_code == 403, response.get_body()
        assert body_of(response)["type"].endswith("/tenant-not-allowed")
    assert apps_in(api, home) == []
    prefix = api.services.settings.name_prefix
    assert not any(name.startswith(f"{prefix}-{home}") for name in api.stand_in.state()["vault"]["secrets"])

    monkeypatch.setenv("ALLOW_HOME_TENANT", "true")  # the vendor opts in, deliberately
    allowed = bootstrap.build(load_settings())
    bootstrap.override(allowed)
    try:
        response = await api.put(home, "sentinel")
        assert response.status_code == 201, body_of(response)
        assert len(apps_in(api, home)) == 1
    finally:
        bootstrap.override(api.services)
        await allowed.close()


async def test_a_wrong_federated_subject_fails_with_entras_error(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in stand_in.app_settings().items():
        monkeypatch.setenv(name, value)
    provisioner = await provisioner_app(stand_in, "00000000-0000-0000-0000-0000000000aa")  # not our identity
    consent(stand_in, NORTHWIND, provisioner)
    monkeypatch.setenv("PROVISIONER_CLIENT_ID", provisioner)
    monkeypatch.setenv("NAME_PREFIX", f"w{uuid.uuid4().hex[:10]}")
    async with serving(stand_in) as served:
        response = await served.put(NORTHWIND, "sentinel")
    assert response.status_code == 502
    assert body_of(response)["upstreamCode"] == "AADSTS70021"


async def test_offboarding_leaves_nothing_and_a_second_delete_is_a_no_op(vendor: tuple[Api, str, str]) -> None:
    api, _, _ = vendor
    client_id = body_of(await api.put(NORTHWIND, "sentinel"))["application"]["clientId"]
    await api.put(NORTHWIND, "m365-defender")  # another integration, which offboarding must not touch
    path = f"tenants/{NORTHWIND}/integrations/sentinel"
    params = {"tenantId": NORTHWIND, "integration": "sentinel"}

    first = await api.call("offboard_integration", "DELETE", f"{path}?purgeApplication=true", params)
    assert first.status_code == 200
    assert body_of(first)["application"] == "purged"
    assert set(body_of(first)["secrets"].values()) == {"deleted"}
    state = api.stand_in.state()
    remaining = [a["uniqueName"] for a in apps_in(api, NORTHWIND)]
    assert remaining == [f"{api.services.settings.name_prefix}-m365-defender"]
    assert not any(a["deletedApplications"] for a in [state["tenants"][NORTHWIND]]), "purged from deleted items"
    assert [s for s in state["tenants"][NORTHWIND]["servicePrincipals"] if s["appId"] == client_id] == []
    live = [n for n in state["vault"]["secrets"] if NORTHWIND in n and n.startswith(api.services.settings.name_prefix)]
    assert all("m365-defender" in n for n in live) and len(live) == 3
    prefix = api.services.settings.name_prefix
    assert sum(n.startswith(prefix) and "sentinel" in n for n in state["vault"]["deletedSecrets"]) == 3

    again = await api.call("offboard_integration", "DELETE", path, params)
    assert again.status_code == 200
    assert body_of(again)["application"] == "absent" and set(body_of(again)["secrets"].values()) == {"absent"}

    reonboarded = await api.put(NORTHWIND, "sentinel")  # soft-deleted secret names are recovered and reused
    assert reonboarded.status_code == 201, body_of(reonboarded)


async def test_a_tenant_entra_does_not_know_is_404_tenant_not_found_for_every_route(
    vendor: tuple[Api, str, str],
) -> None:
    api, _, _ = vendor
    made_up = str(uuid.uuid4())
    put = await api.put(made_up, "sentinel")
    get = await api.get(made_up, "sentinel")
    for response in (put, get):
        assert response.status_code == 404, body_of(response)
        assert body_of(response)["type"].endswith("/tenant-not-found")
    assert made_up not in api.stand_in.state()["tenants"]
