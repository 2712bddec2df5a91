"""Certificates on applications (Graph keyCredentials, addKey, removeKey, app management policy) and
certificate client assertions at the token endpoint, through the unmodified msgraph-sdk and azure-identity.

Rows G-K*, E-C* of emulator/FIDELITY.md.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import CertificateCredential, ClientAssertionCredential, ManagedIdentityCredential
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from kiota_abstractions.base_request_configuration import RequestConfiguration
from msgraph.generated.applications.applications_request_builder import ApplicationsRequestBuilder
from msgraph.generated.applications.item.add_key.add_key_post_request_body import AddKeyPostRequestBody
from msgraph.generated.applications.item.application_item_request_builder import ApplicationItemRequestBuilder
from msgraph.generated.applications.item.remove_key.remove_key_post_request_body import RemoveKeyPostRequestBody
from msgraph.generated.models.application import Application
from msgraph.generated.models.federated_identity_credential import FederatedIdentityCredential
from msgraph.generated.models.key_credential import KeyCredential
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.graph_service_client import GraphServiceClient

from emulator.launcher import StandIn
from tests.emulator.directory import (
    GRAPH_APP_ID,
    add_password,
    federated_app,
    grant,
    upsert_app,
    upsert_service_principal,
)
from tests.emulator.sdk import GRAPH_SCOPE, graph_client, secret_credential

NORTHWIND = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"
TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"


@dataclass(frozen=True)
class Cert:
    key: rsa.RSAPrivateKey
    certificate: x509.Certificate

    @property
    def der(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.DER)

    @property
    def pem(self) -> bytes:
        """Private key and certificate, as CertificateCredential's certificate_data takes them."""
        key = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return key + self.certificate.public_bytes(serialization.Encoding.PEM)

    @property
    def x5t_s256(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(self.der).digest()).decode().rstrip("=")

    @property
    def x5t(self) -> str:
        return base64.urlsafe_b64encode(hashlib.sha1(self.der).digest()).decode().rstrip("=")  # noqa: S324


def make_cert(name: str, not_before: datetime | None = None, days: int = 365) -> Cert:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    start = (not_before or datetime.now(UTC) - timedelta(minutes=5)).replace(microsecond=0)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return Cert(key, certificate)


def key_credential(cert: Cert, **props: object) -> KeyCredential:
    return KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=cert.der, **props)


def error_code(error: ODataError) -> str:
    assert error.error is not None
    return str(error.error.code)


def error_message(error: ODataError) -> str:
    assert error.error is not None
    return str(error.error.message)


async def read_keys(graph: GraphServiceClient, app_id: str, select: bool = False) -> list[KeyCredential]:
    config = None
    if select:
        config = RequestConfiguration(
            query_parameters=ApplicationItemRequestBuilder.ApplicationItemRequestBuilderGetQueryParameters(
                select=["keyCredentials"]
            )
        )
    app = await graph.applications.by_application_id(app_id).get(request_configuration=config)
    assert app is not None and app.key_credentials is not None
    return list(app.key_credentials)


async def set_keys(graph: GraphServiceClient, app_id: str, keys: list[KeyCredential]) -> None:
    await graph.applications.by_application_id(app_id).patch(Application(key_credentials=keys))


def certificate_credential(stand_in: StandIn, tenant_id: str, client_id: str, cert: Cert) -> CertificateCredential:
    return CertificateCredential(
        tenant_id, client_id, certificate_data=cert.pem,
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip


def assertion_credential(
    stand_in: StandIn, tenant_id: str, client_id: str, func: Callable[[], str]
) -> ClientAssertionCredential:
    return ClientAssertionCredential(
        tenant_id, client_id, func,
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip


def assertion(
    stand_in: StandIn,
    tenant_id: str,
    client_id: str,
    cert: Cert,
    *,
    signer: rsa.RSAPrivateKey | None = None,
    header: dict[str, str] | None = None,
    **overrides: object,
) -> str:
    """What the product sends: PS256 with x5t#S256 (certificate-credentials page), signed with PyJWT."""
    now = int(time.time())
    claims: dict[str, object] = {
        "aud": f"{stand_in.authority}/{tenant_id}/oauth2/v2.0/token",
        "iss": client_id,
        "sub": client_id,
        "jti": str(uuid.uuid4()),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(
        claims, signer or cert.key, algorithm="PS256", headers=header or {"typ": "JWT", "x5t#S256": cert.x5t_s256}
    )


def token_claims(token: str) -> dict[str, object]:
    return dict(jwt.decode(token, options={"verify_signature": False}))


@pytest.fixture(scope="module")
def certs() -> dict[str, Cert]:
    """Key generation is the slow part: a handful of certificates shared by the module's tests."""
    now = datetime.now(UTC)
    return {
        "a": make_cert("cert-a"),
        "b": make_cert("cert-b"),
        "c": make_cert("cert-c"),
        "stranger": make_cert("stranger"),
        "expired": make_cert("expired", not_before=now - timedelta(days=10), days=5),
    }


# --- Graph: keyCredentials on the application ---


async def test_patch_adds_a_certificate_and_graph_completes_it(
    graph: GraphServiceClient, unique: str, certs: dict[str, Cert]
) -> None:
    cert = certs["a"]
    app = await upsert_app(graph, f"cert-{unique}")
    await set_keys(graph, str(app.id), [key_credential(cert)])

    [read] = await read_keys(graph, str(app.id))
    assert read.key is None  # a plain read never returns the certificate
    assert read.key_id is not None
    assert read.custom_key_identifier == hashlib.sha1(cert.der).digest()  # noqa: S324  the SHA-1 thumbprint
    assert read.start_date_time == cert.certificate.not_valid_before_utc
    assert read.end_date_time == cert.certificate.not_valid_after_utc
    assert read.display_name == "CN=cert-a"
    assert (read.type, read.usage) == ("AsymmetricX509Cert", "Verify")

    [selected] = await read_keys(graph, str(app.id), select=True)
    assert selected.key == cert.der  # $select=keyCredentials on a single object returns it

    config = RequestConfiguration(
        query_parameters=ApplicationsRequestBuilder.ApplicationsRequestBuilderGetQueryParameters(
            filter=f"appId eq '{app.app_id}'"
        )
    )
    page = await graph.applications.get(request_configuration=config)  # a list never returns it either
    assert page is not None and page.value is not None
    [listed] = page.value
    assert listed.key_credentials and listed.key_credentials[0].key is None


async def test_patch_replaces_the_collection_and_keeps_what_is_sent_back(
    graph: GraphServiceClient, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"replace-{unique}")
    await set_keys(graph, str(app.id), [key_credential(certs["a"], display_name="first")])
    [first] = await read_keys(graph, str(app.id))

    # As Terraform's azuread_application_certificate does: what was read (key null) plus the new one.
    await set_keys(graph, str(app.id), [first, key_credential(certs["b"])])
    both = await read_keys(graph, str(app.id))
    assert len(both) == 2 and both[0].key_id == first.key_id

    # Sending only the new one replaces the set.
    second = both[1]
    await set_keys(graph, str(app.id), [second])
    assert [k.key_id for k in await read_keys(graph, str(app.id))] == [second.key_id]

    # A different certificate under an existing keyId is refused.
    with pytest.raises(ODataError) as raised:
        await set_keys(graph, str(app.id), [key_credential(certs["c"], key_id=second.key_id)])
    assert raised.value.response_status_code == 400
    assert "Update to existing credential with KeyId" in error_message(raised.value)

    await set_keys(graph, str(app.id), [])
    assert await read_keys(graph, str(app.id)) == []


async def test_invalid_key_credentials_are_refused_and_nothing_changes(
    graph: GraphServiceClient, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"badkey-{unique}")
    await set_keys(graph, str(app.id), [key_credential(certs["a"])])
    before = [k.key_id for k in await read_keys(graph, str(app.id))]

    cases: list[tuple[KeyCredential, str]] = [
        (
            KeyCredential(type="AsymmetricX509Cert", usage="Verify", key=b"not a certificate"),
            "KeyCredentialsInvalidValue",
        ),
        (KeyCredential(type="AsymmetricX509Cert", usage="Verify"), "KeyCredentialsInvalidValue"),
        (KeyCredential(type="AsymmetricX509Cert", usage="Encrypt", key=certs["b"].der), "Request_BadRequest"),
        (KeyCredential(type="Symmetric", usage="Verify", key=certs["b"].der), "Request_BadRequest"),
        (
            key_credential(certs["b"], end_date_time=certs["b"].certificate.not_valid_after_utc + timedelta(days=1)),
            "Request_BadRequest",
        ),
    ]
    for bad, code in cases:
        with pytest.raises(ODataError) as raised:
            await set_keys(graph, str(app.id), [key_credential(certs["c"]), bad])
        assert raised.value.response_status_code == 400
        assert error_code(raised.value) == code
    assert [k.key_id for k in await read_keys(graph, str(app.id))] == before


async def test_an_application_is_created_with_key_credentials(
    graph: GraphServiceClient, certs: dict[str, Cert]
) -> None:
    created = await graph.applications.post(
        Application(display_name="created with a cert", key_credentials=[key_credential(certs["a"])])
    )
    assert created is not None and created.key_credentials is not None
    assert created.key_credentials[0].key is None and created.key_credentials[0].key_id is not None


async def test_owned_by_may_not_change_the_certificates_of_an_app_it_does_not_own(
    graph: GraphServiceClient, stand_in: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    other = await upsert_app(graph, f"other-owner-{unique}")
    other_sp = await upsert_service_principal(graph, str(other.app_id))
    await grant(graph, str(other_sp.id), GRAPH_APP_ID, "Application.ReadWrite.OwnedBy")
    secret = await add_password(graph, str(other.id))
    other_graph = graph_client(
        stand_in, secret_credential(stand_in, stand_in.home_tenant_id, str(other.app_id), str(secret.secret_text))
    )
    mine = await upsert_app(graph, f"mine-{unique}")
    with pytest.raises(ODataError) as raised:
        await set_keys(other_graph, str(mine.id), [key_credential(certs["a"])])
    assert raised.value.response_status_code == 403
    assert error_code(raised.value) == "Authorization_RequestDenied"


# --- app management policy: keyCredentials restrictions ---


async def test_policy_caps_certificate_lifetime_tenant_wide_and_per_app(
    graph: GraphServiceClient, stand_in: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    tenant = stand_in.home_tenant_id
    app = await upsert_app(graph, f"keypolicy-{unique}")
    cert = certs["a"]  # valid for a year
    start = cert.certificate.not_valid_before_utc
    short = key_credential(cert, end_date_time=start + timedelta(days=20))

    def tenant_rule(passwords: list[dict[str, object]] | None = None, **rule: object) -> None:
        restriction = {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P30D", **rule}
        restrictions = {"passwordCredentials": passwords or [], "keyCredentials": [restriction]}
        stand_in.admin(
            "PUT",
            f"/tenants/{tenant}/app-management-policy",
            {"isEnabled": True, "applicationRestrictions": restrictions},
        )

    try:
        tenant_rule(restrictForAppsCreatedAfterDateTime="2019-01-01T00:00:00Z")
        with pytest.raises(ODataError) as raised:
            await set_keys(graph, str(app.id), [key_credential(cert)])
        assert error_code(raised.value) == "CredentialInvalidLifetimeAsPerAppPolicy"
        assert raised.value.error is not None and raised.value.error.details is not None
        assert raised.value.error.details[0].code == "InvalidKeyEndDate"
        await set_keys(graph, str(app.id), [short])  # within the cap
        [kept] = await read_keys(graph, str(app.id))
        await set_keys(graph, str(app.id), [kept])  # a kept credential is not evaluated again

        tenant_rule(state="disabled")
        await set_keys(graph, str(app.id), [key_credential(certs["b"])])
        tenant_rule(restrictForAppsCreatedAfterDateTime="2999-01-01T00:00:00Z")  # only apps created later
        await set_keys(graph, str(app.id), [key_credential(certs["c"])])

        # An app-specific policy overrides the tenant default, both ways: stricter for certificates, and
        # without the tenant's ban on passwords.
        tenant_rule(passwords=[{"restrictionType": "passwordAddition"}], state="disabled")
        ten_days = {"restrictionType": "asymmetricKeyLifetime", "maxLifetime": "P10D"}
        path = f"/tenants/{tenant}/applications/{app.app_id}/app-management-policy"
        assigned = stand_in.admin("PUT", path, {"restrictions": {"keyCredentials": [ten_days]}})
        with pytest.raises(ODataError) as per_app:
            await set_keys(graph, str(app.id), [short])
        assert error_code(per_app.value) == "CredentialInvalidLifetimeAsPerAppPolicy"
        assert assigned["id"] in error_message(per_app.value)
        await add_password(graph, str(app.id), end_date_time=datetime.now(UTC) + timedelta(days=1))
        stand_in.admin("DELETE", path)
        with pytest.raises(ODataError) as banned:
            await add_password(graph, str(app.id), end_date_time=datetime.now(UTC) + timedelta(days=1))
        assert error_code(banned.value) == "CredentialTypeNotAllowedAsPerAppPolicy"
    finally:
        stand_in.admin("PUT", f"/tenants/{tenant}/app-management-policy", {"isEnabled": False})
        stand_in.admin("DELETE", f"/tenants/{tenant}/applications/{app.app_id}/app-management-policy")


# --- Entra: certificate client assertions ---


async def test_certificate_credential_gets_a_token_with_the_granted_roles(
    graph: GraphServiceClient, stand_in: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"certtok-{unique}")
    sp = await upsert_service_principal(graph, str(app.app_id))
    await grant(graph, str(sp.id), GRAPH_APP_ID, "User.Read.All")
    await set_keys(graph, str(app.id), [key_credential(certs["a"]), key_credential(certs["b"])])
    tenant = stand_in.home_tenant_id

    # azure-identity's CertificateCredential: RS256 with x5t (SHA-1).
    body = token_claims(
        certificate_credential(stand_in, tenant, str(app.app_id), certs["a"]).get_token(GRAPH_SCOPE).token
    )
    assert body["appid"] == app.app_id and body["roles"] == ["User.Read.All"]

    # What the product sends: PS256 with x5t#S256, through ClientAssertionCredential.
    made = assertion_credential(
        stand_in, tenant, str(app.app_id), lambda: assertion(stand_in, tenant, str(app.app_id), certs["b"])
    )
    assert token_claims(made.get_token(GRAPH_SCOPE).token)["oid"] == sp.id


async def test_certificate_assertions_are_refused_with_entras_codes(
    graph: GraphServiceClient, stand_in: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"certbad-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    await set_keys(graph, str(app.id), [key_credential(certs["a"]), key_credential(certs["expired"])])
    tenant, client = stand_in.home_tenant_id, str(app.app_id)
    a = certs["a"]
    now = int(time.time())

    def refused(make: Callable[[], str]) -> str:
        with pytest.raises(ClientAuthenticationError) as raised:
            assertion_credential(stand_in, tenant, client, make).get_token(GRAPH_SCOPE)
        return str(raised.value)

    assert "AADSTS700027" in refused(lambda: assertion(stand_in, tenant, client, certs["stranger"]))
    assert "The key was not found" in refused(lambda: assertion(stand_in, tenant, client, certs["stranger"]))
    expired = refused(lambda: assertion(stand_in, tenant, client, certs["expired"]))
    assert "AADSTS700027" in expired and "The key used is expired" in expired
    forged = refused(lambda: assertion(stand_in, tenant, client, a, signer=certs["stranger"].key))
    assert "AADSTS700027" in forged and "signature validation" in forged
    assert "AADSTS700024" in refused(
        lambda: assertion(stand_in, tenant, client, a, nbf=now - 1200, iat=now - 1200, exp=now - 600)
    )
    assert "AADSTS700024" in refused(lambda: assertion(stand_in, tenant, client, a, nbf=now + 600, exp=now + 1200))
    assert "AADSTS50027" in refused(lambda: assertion(stand_in, tenant, client, a, aud="https://example.org/token"))
    assert "AADSTS50027" in refused(lambda: assertion(stand_in, tenant, client, a, jti=None))
    assert "AADSTS50048" in refused(lambda: assertion(stand_in, tenant, client, a, sub="someone-else"))

    # A removed key stops working.
    [_, expired_key] = await read_keys(graph, str(app.id))
    await set_keys(graph, str(app.id), [expired_key])
    assert "The key was not found" in refused(lambda: assertion(stand_in, tenant, client, a))


async def test_a_new_certificate_is_refused_until_it_replicates(
    graph: GraphServiceClient, clean_faults: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    stand_in = clean_faults
    app = await upsert_app(graph, f"certlag-{unique}")
    await upsert_service_principal(graph, str(app.app_id))
    stand_in.set_faults(keyCredential=400)
    await set_keys(graph, str(app.id), [key_credential(certs["a"])])
    started = time.monotonic()
    tenant, client = stand_in.home_tenant_id, str(app.app_id)
    with pytest.raises(ClientAuthenticationError) as raised:
        certificate_credential(stand_in, tenant, client, certs["a"]).get_token(GRAPH_SCOPE)
    assert "AADSTS700027" in str(raised.value)
    while True:
        try:
            certificate_credential(stand_in, tenant, client, certs["a"]).get_token(GRAPH_SCOPE)
            break
        except ClientAuthenticationError:
            assert time.monotonic() - started < 10, "the certificate never replicated"
            await asyncio.sleep(0.05)
    assert time.monotonic() - started >= 0.35


# --- Graph: addKey and removeKey ---


def proof(app_object_id: str, cert: Cert, **overrides: object) -> str:
    now = int(time.time())
    claims: dict[str, object] = {"aud": PROOF_AUDIENCE, "iss": app_object_id, "nbf": now, "exp": now + 600}
    claims.update(overrides)
    return jwt.encode(claims, cert.key, algorithm="RS256", headers={"x5t": cert.x5t})


async def test_add_key_and_remove_key_roll_a_certificate_with_a_proof(
    graph: GraphServiceClient, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"roll-{unique}")
    keys = graph.applications.by_application_id(str(app.id))

    # No certificate yet: addKey cannot add the first one (use PATCH).
    with pytest.raises(ODataError) as first:
        await keys.add_key.post(
            AddKeyPostRequestBody(key_credential=key_credential(certs["b"]), proof=proof(str(app.id), certs["a"]))
        )
    assert first.value.response_status_code == 400

    await set_keys(graph, str(app.id), [key_credential(certs["a"])])
    for bad in (
        proof(str(app.id), certs["stranger"]),
        proof(str(app.id), certs["a"], aud="https://graph.microsoft.com"),
        proof(str(app.app_id), certs["a"]),  # iss is the object id, not the appId
        proof(str(app.id), certs["a"], exp=int(time.time()) + 3600),  # longer than ten minutes
    ):
        with pytest.raises(ODataError) as refused:
            await keys.add_key.post(AddKeyPostRequestBody(key_credential=key_credential(certs["b"]), proof=bad))
        assert refused.value.response_status_code == 400

    added = await keys.add_key.post(
        AddKeyPostRequestBody(key_credential=key_credential(certs["b"]), proof=proof(str(app.id), certs["a"]))
    )
    assert added is not None and added.key_id is not None and added.key is None
    assert added.custom_key_identifier == hashlib.sha1(certs["b"].der).digest()  # noqa: S324
    [old, new] = await read_keys(graph, str(app.id))
    assert new.key_id == added.key_id

    await keys.remove_key.post(RemoveKeyPostRequestBody(key_id=old.key_id, proof=proof(str(app.id), certs["b"])))
    assert [k.key_id for k in await read_keys(graph, str(app.id))] == [added.key_id]


# --- cross-tenant federation and multi-tenant apps ---


def managed_identity_assertion() -> Callable[[], str]:
    identity = ManagedIdentityCredential()
    return lambda: identity.get_token(TOKEN_EXCHANGE_SCOPE).token


async def test_a_federated_credential_trusting_another_tenants_entra_is_700236(
    graph: GraphServiceClient, stand_in: StandIn, unique: str
) -> None:
    # A provisioner (multi-tenant, in the home tenant) consented in Northwind makes an app there...
    provisioner = await federated_app(graph, stand_in, f"x-{unique}", stand_in.info["managed_identity_object_id"])
    stand_in.admin(
        "POST",
        f"/tenants/{NORTHWIND}/consent",
        {"appId": provisioner, "roles": {GRAPH_APP_ID: ["Application.ReadWrite.OwnedBy", "User.Read.All"]}},
    )
    as_provisioner = assertion_credential(stand_in, NORTHWIND, provisioner, managed_identity_assertion())
    assert token_claims(as_provisioner.get_token(GRAPH_SCOPE).token)["roles"] == [
        "Application.ReadWrite.OwnedBy",
        "User.Read.All",
    ]
    northwind = graph_client(stand_in, as_provisioner)
    local = await upsert_app(northwind, f"local-{unique}")
    await upsert_service_principal(northwind, str(local.app_id))
    # ...that trusts the home tenant's managed identity directly: Entra refuses the exchange.
    await northwind.applications.by_application_id(str(local.id)).federated_identity_credentials.post(
        FederatedIdentityCredential(
            name="cross-tenant",
            issuer=f"https://login.microsoftonline.com/{stand_in.home_tenant_id}/v2.0",
            subject=stand_in.info["managed_identity_object_id"],
            audiences=["api://AzureADTokenExchange"],
        )
    )
    with pytest.raises(ClientAuthenticationError) as raised:
        assertion_credential(stand_in, NORTHWIND, str(local.app_id), managed_identity_assertion()).get_token(
            GRAPH_SCOPE
        )
    assert "AADSTS700236" in str(raised.value)


async def test_a_multi_tenant_app_with_a_certificate_gets_tokens_for_a_consenting_tenant(
    graph: GraphServiceClient, stand_in: StandIn, unique: str, certs: dict[str, Cert]
) -> None:
    app = await upsert_app(graph, f"multicert-{unique}", sign_in_audience="AzureADMultipleOrgs")
    await set_keys(graph, str(app.id), [key_credential(certs["c"])])
    stand_in.admin(
        "POST", f"/tenants/{NORTHWIND}/consent", {"appId": app.app_id, "roles": {GRAPH_APP_ID: ["User.Read.All"]}}
    )
    body = token_claims(
        certificate_credential(stand_in, NORTHWIND, str(app.app_id), certs["c"]).get_token(GRAPH_SCOPE).token
    )
    assert body["tid"] == NORTHWIND and body["roles"] == ["User.Read.All"]
