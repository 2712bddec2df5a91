"""Certificate credentials end to end: the HTTP triggers, the unmodified SDKs, the stand-in's Key Vault
certificates, keyCredentials and certificate client assertions; the stand-in's clock moved by days."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import AsyncIterator

import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import CertificateCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.azurite import Azurite
from tests.functions.conftest import Api, app_environment, body_of, serving
from tests.functions.test_first_contact import password_restrictions
from tests.functions.test_rotation import DAY, StandInClock, stored, sweep, works

GRAPH = "https://graph.microsoft.com/.default"
CERTIFICATE = json.dumps({"credentialType": "certificate"}).encode()


@pytest.fixture
async def rotating(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, StandInClock]]:
    stand_in = clock_stand_in
    stand_in.clear_faults()
    app_environment(
        monkeypatch, stand_in, "c", azurite,
        SECRET_LIFETIME_DAYS="60", CERTIFICATE_VALIDITY_MONTHS="2", ROTATION_WINDOW_DAYS="30",
        ROTATION_GRACE_HOURS="48",
    )  # fmt: skip
    clock = StandInClock(stand_in)
    try:
        async with serving(stand_in, now=clock.now) as served:
            yield served, clock
    finally:
        stand_in.clear_faults()


def certificate_name(api: Api, integration: str) -> str:
    return f"{api.services.settings.name_prefix}-{api.stand_in.home_tenant_id}-{integration}-client-certificate"


def vault(api: Api) -> SecretClient:
    return SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip


def pkcs12(api: Api, integration: str, version: str | None = None) -> bytes:
    """What a downstream service reads through the certificate's Key Vault reference: the backing secret."""
    secret = vault(api).get_secret(certificate_name(api, integration), version)
    assert secret.value is not None and secret.properties.content_type == "application/x-pkcs12"
    return base64.b64decode(secret.value)


def signs_in(api: Api, client_id: str, certificate: bytes) -> bool:
    """A consumer's token request with the certificate, as azure-identity sends it (RS256, `x5t`)."""
    credential = CertificateCredential(
        api.stand_in.home_tenant_id, client_id, certificate_data=certificate, authority=api.stand_in.authority,
        disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    try:
        credential.get_token(GRAPH)
        return True
    except ClientAuthenticationError:
        return False


async def rotate_now(api: Api, integration: str, body: bytes = b"") -> dict[str, object]:
    tenant = api.stand_in.home_tenant_id
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/{integration}/rotate",
        {"tenantId": tenant, "integration": integration}, body, {"content-type": "application/json"} if body else {},
    )  # fmt: skip
    assert response.status_code == 200, body_of(response)
    result: dict[str, object] = body_of(response)
    return result


async def test_a_certificate_registration_is_proven_stored_and_usable_through_its_reference(
    rotating: tuple[Api, StandInClock], caplog: pytest.LogCaptureFixture
) -> None:
    api, _ = rotating
    tenant = api.stand_in.home_tenant_id
    with caplog.at_level(logging.DEBUG):
        response = await api.put(tenant, "sentinel", CERTIFICATE)
    assert response.status_code == 201, body_of(response)
    created = body_of(response)
    credential, references = created["credential"], created["keyVaultReferences"]
    assert credential["type"] == "certificate" and credential["verified"] is True
    assert references["clientSecret"] is None and certificate_name(api, "sentinel") in references["clientCertificate"]
    assert "client certificate created" in created["changes"] and created["drift"] == []

    [app] = api.apps()
    assert app["passwordKeyIds"] == [], "a certificate registration must hold no client secret"
    with pytest.raises(ResourceNotFoundError):
        stored(api, "sentinel")
    bundle = pkcs12(api, "sentinel")
    assert signs_in(api, created["application"]["clientId"], bundle)

    # Nothing of the key travels anywhere but Key Vault: not in the response, not in any log line.
    secret_text = base64.b64encode(bundle).decode()
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for leak in (secret_text[:64], secret_text[-64:], "PRIVATE KEY"):
        assert leak not in logged and leak not in response.get_body().decode()

    again = await api.put(tenant, "sentinel", CERTIFICATE)
    assert again.status_code == 200 and body_of(again)["outcome"] == "complete", body_of(again)
    status = body_of(await api.get(tenant, "sentinel"))
    assert status["credential"]["thumbprint"] == credential["thumbprint"] and status["drift"] == []


async def test_a_certificate_is_rotated_when_due_with_both_working_through_the_grace_period(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    client_id = created["application"]["clientId"]
    first = pkcs12(api, "sentinel")

    clock.advance(35 * DAY)  # a two-month certificate: now inside the 30-day window
    await sweep()
    second = pkcs12(api, "sentinel")
    assert second != first
    status = body_of(await api.get(tenant, "sentinel"))
    assert status["credential"]["thumbprint"] != created["credential"]["thumbprint"]
    assert status["keyVaultReferences"]["clientCertificate"] == created["keyVaultReferences"]["clientCertificate"]
    assert signs_in(api, client_id, first) and signs_in(api, client_id, second)

    clock.advance(49 * 3600)
    await sweep()
    assert not signs_in(api, client_id, first), "the previous certificate outlived its grace period"
    assert signs_in(api, client_id, second)
    [app] = api.apps()
    assert app["keyCredentialIds"] == [status["credential"]["keyId"]]


async def test_on_demand_rotation_of_a_certificate_can_retire_the_previous_one_at_once(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, _ = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel", CERTIFICATE))
    leaked = pkcs12(api, "sentinel")
    result = await rotate_now(api, "sentinel", b'{"retirePrevious": "immediately"}')
    assert result["action"] == "rotated" and result["retiredKeyIds"] == [created["credential"]["keyId"]]
    assert not signs_in(api, created["application"]["clientId"], leaked)
    assert signs_in(api, created["application"]["clientId"], pkcs12(api, "sentinel"))


async def test_switching_from_a_secret_to_a_certificate_leaves_no_gap_and_no_stale_secret(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel"))
    client_id = created["application"]["clientId"]
    secret, _ = stored(api, "sentinel")

    switched = body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    assert switched["credential"]["type"] == "certificate"
    assert works(api, client_id, secret), "consumers still on the secret were cut off without a grace period"
    assert signs_in(api, client_id, pkcs12(api, "sentinel"))
    assert stored(api, "sentinel")[1]["superseded-by"] == "certificate"

    clock.advance(49 * 3600)
    await sweep()
    assert not works(api, client_id, secret)
    with pytest.raises(ResourceNotFoundError):
        stored(api, "sentinel")
    [app] = api.apps()
    assert app["passwordKeyIds"] == []
    assert signs_in(api, client_id, pkcs12(api, "sentinel"))


async def test_a_tenant_that_forbids_secrets_onboards_with_a_certificate(rotating: tuple[Api, StandInClock]) -> None:
    api, _ = rotating
    tenant = api.stand_in.home_tenant_id
    with password_restrictions(api.stand_in, {"restrictionType": "passwordAddition"}):
        refused = await api.put(tenant, "sentinel")
        assert refused.status_code == 409 and body_of(refused)["type"].endswith("secrets-forbidden-by-policy")
        response = await api.put(tenant, "sentinel", CERTIFICATE)
        assert response.status_code == 201, body_of(response)
        assert signs_in(api, body_of(response)["application"]["clientId"], pkcs12(api, "sentinel"))


async def test_a_credential_type_the_integration_does_not_offer_is_a_400_naming_the_field(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, _ = rotating
    response = await api.put(api.stand_in.home_tenant_id, "sentinel", b'{"credentialType": "password"}')
    assert response.status_code == 400 and body_of(response)["field"] == "credentialType"
    assert api.apps() == []


async def test_offboarding_deletes_the_certificate_with_the_app(rotating: tuple[Api, StandInClock]) -> None:
    api, _ = rotating
    tenant = api.stand_in.home_tenant_id
    body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    response = await api.call(
        "offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel",
        {"tenantId": tenant, "integration": "sentinel"},
    )  # fmt: skip
    assert response.status_code == 200
    assert body_of(response)["certificates"] == {certificate_name(api, "sentinel"): "deleted"}
    with pytest.raises(ResourceNotFoundError):
        vault(api).get_secret(certificate_name(api, "sentinel"))
