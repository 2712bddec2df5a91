"""Certificate credentials end to end: the HTTP triggers, the unmodified SDKs, the stand-in's Key Vault
certificates, keyCredentials and certificate client assertions; the stand-in's clock moved by days."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import azure.functions as func
import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import CertificateCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.functions.conftest import FUNCTIONS, Api, body_of
from tests.functions.test_first_contact import password_restrictions
from tests.functions.test_rotation import DAY, StandInClock, rotating, stored, sweep, vault, works

__all__ = ["rotating"]  # the fixture, shared with test_rotation.py

GRAPH = "https://graph.microsoft.com/.default"
CERTIFICATE = json.dumps({"credentialType": "certificate"}).encode()


def certificate_name(api: Api, integration: str) -> str:
    return f"{api.services.settings.name_prefix}-{api.stand_in.home_tenant_id}-{integration}-client-certificate"


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
    # A rotation run within the grace period (the sweep would plan the secret as waiting): the secret stays.
    assert (await api.services.rotation.rotate(tenant, "sentinel")).retired_key_ids == []
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


# --- certificates the vendor supplies (it holds the key; this service installs, reports, never rotates) ---


class VendorCertificate:
    """A certificate the vendor issued, with its key: what the vendor's own services sign in with."""

    def __init__(self, now: datetime, days: int = 60, bits: int = 2048, *, starts: datetime | None = None) -> None:
        # Dated by the service's clock (`now`), which the tests move forward (an earlier test may already have).
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vendor exchange integration")])
        start = starts or now - timedelta(minutes=5)
        self.certificate = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(self.key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + timedelta(days=days)).sign(self.key, hashes.SHA256())
        )  # fmt: skip

    @property
    def pem(self) -> str:
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode()

    @property
    def key_pem(self) -> str:
        return self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    def signs_in(self, api: Api, client_id: str) -> bool:
        return signs_in(api, client_id, (self.key_pem + self.pem).encode())

    def assertion(self, api: Api, client_id: str) -> str:
        """What a vendor sends as certificateProof: a client assertion for this tenant's token endpoint."""
        thumbprint = self.certificate.fingerprint(hashes.SHA256())
        now = int(datetime.now(UTC).timestamp())
        claims = {
            "aud": f"{api.stand_in.authority}/{api.stand_in.home_tenant_id}/oauth2/v2.0/token",
            "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()), "nbf": now, "iat": now, "exp": now + 600,
        }  # fmt: skip
        x5t = base64.urlsafe_b64encode(thumbprint).rstrip(b"=").decode()
        return jwt.encode(claims, self.key, algorithm="PS256", headers={"x5t#S256": x5t})


def vendor_body(certificate: str, proof: str | None = None) -> bytes:
    body = {"credentialType": "certificate", "certificate": certificate}
    if proof is not None:
        body["certificateProof"] = proof
    return json.dumps(body).encode()


async def test_a_vendor_certificate_is_installed_reported_unproven_and_proven_by_its_assertion(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    vendor = VendorCertificate(clock.now())
    response = await api.put(tenant, "sentinel", vendor_body(vendor.pem))
    assert response.status_code == 201, body_of(response)
    created = body_of(response)
    credential = created["credential"]
    assert credential["type"] == "certificate" and credential["source"] == "vendor"
    assert credential["verified"] is False, "no key here, no proof sent: installed but unproven"
    assert credential["thumbprint"] == vendor.certificate.fingerprint(hashes.SHA256()).hex().upper()
    assert (
        "clientCertificate" not in created["keyVaultReferences"] and created["keyVaultReferences"]["vendorCertificate"]
    )
    [app] = api.apps()
    assert app["passwordKeyIds"] == [] and app["keyCredentialIds"] == [credential["keyId"]]
    client_id = created["application"]["clientId"]
    assert vendor.signs_in(api, client_id), "the vendor's own services sign in with the key it kept"

    proven = body_of(await api.put(tenant, "sentinel", vendor_body(vendor.pem, vendor.assertion(api, client_id))))
    assert proven["credential"]["verified"] is True and "vendor certificate proven" in proven["changes"], proven
    again = await api.put(tenant, "sentinel")  # no body: the registration keeps its vendor certificate
    assert again.status_code == 200 and body_of(again)["outcome"] == "complete", body_of(again)
    assert api.apps()[0]["keyCredentialIds"] == [credential["keyId"]]


async def test_a_vendor_certificate_with_a_private_key_is_refused_and_the_key_goes_nowhere(
    rotating: tuple[Api, StandInClock], caplog: pytest.LogCaptureFixture
) -> None:
    api, clock = rotating
    vendor = VendorCertificate(clock.now())
    with caplog.at_level(logging.DEBUG):
        response = await api.put(api.stand_in.home_tenant_id, "sentinel", vendor_body(vendor.key_pem + vendor.pem))
    assert response.status_code == 400, body_of(response)
    problem = body_of(response)
    assert problem["type"].endswith("/private-key-supplied") and problem["field"] == "certificate"
    secret_part = vendor.key_pem.splitlines()[3]
    assert secret_part not in response.get_body().decode()
    assert all(secret_part not in r.getMessage() for r in caplog.records)
    assert api.apps() == [], "nothing is created for a refused certificate"


@pytest.mark.parametrize(
    ("make", "why"),
    [
        (lambda clock: VendorCertificate(clock.now(), bits=1024), "RSA key of at least 2048 bits"),
        (
            lambda clock: VendorCertificate(clock.now(), days=10, starts=clock.now() - timedelta(days=30)),
            "not valid now",
        ),
    ],
    ids=["weak key", "expired"],
)
async def test_a_weak_or_expired_vendor_certificate_is_a_400_naming_the_field(
    rotating: tuple[Api, StandInClock], make: Callable[[StandInClock], VendorCertificate], why: str
) -> None:
    api, clock = rotating
    vendor = make(clock)
    response = await api.put(api.stand_in.home_tenant_id, "sentinel", vendor_body(vendor.pem))
    assert response.status_code == 400 and body_of(response)["field"] == "certificate", body_of(response)
    assert why in body_of(response)["detail"]
    assert api.apps() == []


async def test_a_vendor_certificate_longer_lived_than_the_policy_allows_is_refused_by_name(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    policy = {"isEnabled": True, "applicationRestrictions": {"keyCredentials": [
        {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P30D"},
    ]}}  # fmt: skip
    api.stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", policy)
    try:
        response = await api.put(tenant, "sentinel", vendor_body(VendorCertificate(clock.now(), days=60).pem))
    finally:
        api.stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", {"isEnabled": False})
    assert response.status_code == 409 and body_of(response)["type"].endswith("/certificates-refused-by-policy")


async def test_a_vendor_certificate_is_never_rotated_here_but_its_expiry_is_reported_and_replaced_without_a_gap(
    rotating: tuple[Api, StandInClock], caplog: pytest.LogCaptureFixture
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    first = VendorCertificate(clock.now(), days=60)
    created = body_of(await api.put(tenant, "sentinel", vendor_body(first.pem)))
    client_id = created["application"]["clientId"]

    clock.advance(35 * DAY)  # 25 days left: inside the 30-day window
    with caplog.at_level(logging.INFO):
        await sweep()
    [summary] = [r.__dict__["rotation_summary"] for r in caplog.records if "rotation_summary" in r.__dict__]
    assert summary["enqueued"] == {"due": 1}, summary
    [worked] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("queued due of")]
    assert "sentinel: vendor-expiring" in worked, worked
    status = body_of(await api.get(tenant, "sentinel"))
    assert any("vendor certificate expires" in d for d in status["drift"]), status["drift"]
    response = await api.call(
        "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate",
        {"tenantId": tenant, "integration": "sentinel"},
    )  # fmt: skip
    assert response.status_code == 409 and body_of(response)["type"].endswith("/vendor-rotates-certificate")

    second = VendorCertificate(clock.now(), days=90)
    replaced = body_of(await api.put(tenant, "sentinel", vendor_body(second.pem)))
    assert replaced["credential"]["keyId"] != created["credential"]["keyId"]
    assert first.signs_in(api, client_id) and second.signs_in(api, client_id), "no gap while consumers move"
    clock.advance(49 * 3600)
    await sweep()
    assert not first.signs_in(api, client_id) and second.signs_in(api, client_id)


async def test_switching_back_from_a_certificate_to_a_secret_retires_the_certificate_after_the_grace_period(
    rotating: tuple[Api, StandInClock],
) -> None:
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    client_id = created["application"]["clientId"]
    bundle = pkcs12(api, "sentinel")
    switched = body_of(await api.put(tenant, "sentinel", b'{"credentialType": "secret"}'))
    assert switched["credential"]["type"] == "secret"
    assert works(api, client_id, stored(api, "sentinel")[0]) and signs_in(api, client_id, bundle)
    clock.advance(49 * 3600)
    await sweep()
    assert not signs_in(api, client_id, bundle), "the superseded certificate outlived its grace period"
    assert works(api, client_id, stored(api, "sentinel")[0])
    with pytest.raises(ResourceNotFoundError):
        pkcs12(api, "sentinel")


async def test_switching_back_within_the_grace_period_keeps_the_first_credential_current(
    rotating: tuple[Api, StandInClock],
) -> None:
    """secret -> certificate -> secret inside the grace period: the secret is current again, so the sweep after
    the grace period retires the certificate and never the secret consumers went back to."""
    api, clock = rotating
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel"))
    client_id = created["application"]["clientId"]
    secret, _ = stored(api, "sentinel")
    body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    back = body_of(await api.put(tenant, "sentinel", b'{"credentialType": "secret"}'))
    assert back["credential"]["type"] == "secret" and back["credential"]["keyId"] == created["credential"]["keyId"]
    assert "superseded-by" not in stored(api, "sentinel")[1]
    clock.advance(49 * 3600)
    await sweep()
    assert works(api, client_id, secret), "the secret switched back to was retired"
    assert api.apps()[0]["keyCredentialIds"] == []


async def test_a_new_certificate_entra_takes_minutes_to_accept_stays_staged_and_is_promoted_only_once_proven(
    rotating: tuple[Api, StandInClock], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entra's lag for a new key can outlast VERIFY_TIMEOUT_SECONDS: the sweep leaves the new certificate staged,
    consumers keep reading the old one through the unchanged reference, and a later sweep proves and promotes it."""
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel", CERTIFICATE))
    client_id = created["application"]["clientId"]
    first = pkcs12(api, "sentinel")
    credentials = api.services.rotation.credentials
    monkeypatch.setattr(credentials, "settings", dataclasses.replace(credentials.settings, verify_timeout_seconds=0.5))
    clock.advance(35 * DAY)
    api.stand_in.set_faults(keyCredential=2500)  # stamped on the new key when it is added
    try:
        await sweep()
    finally:
        api.stand_in.clear_faults()

    assert pkcs12(api, "sentinel") == first, "promoted before a token proved it"
    assert vault(api).get_secret(f"{certificate_name(api, 'sentinel')}-staged").value
    assert len(api.apps()[0]["keyCredentialIds"]) == 2

    await asyncio.sleep(2.6)  # the stand-in's lag, measured on its monotonic clock, runs out
    clock.advance(3600)  # the due index looks at a record it fanned out again an hour later (sweep_pass.RECHECK)
    await sweep()
    second = pkcs12(api, "sentinel")
    assert second != first and signs_in(api, client_id, second) and signs_in(api, client_id, first)


async def test_key_vaults_certificate_near_expiry_event_rotates_the_certificate(
    rotating: tuple[Api, StandInClock],
) -> None:
    """Key Vault raises CertificateNearExpiry (ObjectType Certificate, the certificate's name) to the same trigger."""
    api, clock = rotating
    created = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel", CERTIFICATE))
    first = pkcs12(api, "sentinel")
    clock.advance(35 * DAY)
    name = certificate_name(api, "sentinel")
    event = func.EventGridEvent(
        id=str(uuid.uuid4()), topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z",
        subject=name, event_type="Microsoft.KeyVault.CertificateNearExpiry", event_time=None, data_version="1",
        data={"Id": f"{api.stand_in.vault_url}/certificates/{name}/abc", "VaultName": "127.0.0.1",
              "ObjectType": "Certificate", "ObjectName": name, "Version": "abc", "NBF": None, "EXP": 0},
    )  # fmt: skip
    await FUNCTIONS["secret_near_expiry"](event)
    assert pkcs12(api, "sentinel") != first
    assert (
        body_of(await api.get(api.stand_in.home_tenant_id, "sentinel"))["credential"]["thumbprint"]
        != (created["credential"]["thumbprint"])
    )
