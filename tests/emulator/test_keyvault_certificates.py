"""Key Vault certificates through the unmodified azure-keyvault-certificates aio client (and azure-keyvault-secrets
for each version's backing secret), with every response checked against Microsoft's certificates REST spec.

The stand-in here is one of the module's own, set up as the recorded vaults were (7 days' soft-delete
retention, no purge protection, so a purge can succeed) and with the managed identity holding Key Vault
Administrator (the seeded Secrets Officer may not touch certificates). emulator/FIDELITY.md, section
"Key Vault certificates", names the source of each behaviour pinned here.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.core.pipeline import PipelineResponse
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.certificates import (
    CertificateContentType,
    CertificatePolicy,
    CertificatePolicyAction,
    CertificateProperties,
    KeyCurveName,
    KeyType,
    KeyVaultCertificate,
    LifetimeAction,
)
from azure.keyvault.certificates._shared import http_challenge_cache
from azure.keyvault.certificates.aio import CertificateClient
from azure.keyvault.secrets.aio import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID
from jsonschema import Draft4Validator  # type: ignore[import-untyped]  # no stubs in the venv

from emulator.launcher import REPO, StandIn, start_stand_in
from tests.emulator.sdk import async_secret_client

SPEC = Path(__file__).resolve().parent / "spec"
CERTIFICATES_SPEC = SPEC / "keyvault-certificates-2025-07-01.json"
SECRETS_SPEC = SPEC / "keyvault-secrets-2025-07-01.json"
RETENTION_DAYS = 7
# Served although the spec does not define them, as Key Vault's own responses show: `nextLink: null` on the
# last page (Azure/azure-sdk-for-js recordings), and a created certificate's `pending` and its policy's
# `basic_constraints` (Azure/azure-sdk-for-js, keyvault-certificates recording "can get a certificate's
# secret in PKCS12 format").
NULLABLE_AS_SERVED = {("CertificateListResult", "nextLink")}
RECORDED_EXTRAS = {
    ("CertificateBundle", "pending"): {"type": "object", "properties": {"id": {"type": "string"}}},
    ("DeletedCertificateBundle", "pending"): {"type": "object", "properties": {"id": {"type": "string"}}},
    ("X509CertificateProperties", "basic_constraints"): {"type": "object", "properties": {"ca": {"type": "boolean"}}},
}
NO_PRIVATE_KEY = (
    "No certificate with private key found in the specified X.509 certificate content. Please specify X.509 "
    "certificate content with only one certificate containing private key."
)


def unique(prefix: str) -> str:
    return f"cert-{prefix}-{uuid.uuid4().hex[:10]}"


def strict(spec_path: Path) -> dict[str, Any]:
    """The spec's definitions with closed objects, x-nullable as JSON Schema, and the recorded extras."""
    definitions: dict[str, Any] = copy.deepcopy(json.loads(spec_path.read_text())["definitions"])
    for name, definition in definitions.items():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
            for prop_name, prop in definition["properties"].items():
                if (name, prop_name) in NULLABLE_AS_SERVED or prop.get("x-nullable") is True:
                    prop["type"] = [prop["type"], "null"]
        if definition.get("x-nullable") is True and "type" in definition:
            definition["type"] = [definition["type"], "null"]
    for (name, prop_name), schema in RECORDED_EXTRAS.items():
        if name in definitions:
            definitions[name]["properties"][prop_name] = schema
    return definitions


def assert_matches(definitions: dict[str, Any], definition: str, body: Any) -> None:
    validator = Draft4Validator({"$ref": f"#/definitions/{definition}", "definitions": definitions})
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, f"{definition} mismatch:\n" + "\n".join(
        f"  at {'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors
    )


@dataclass
class Captured:
    """Each raw response the SDK receives (method, path, status, JSON body), via azure-core's raw_response_hook."""

    responses: list[tuple[str, str, int, Any]] = field(default_factory=list)

    def __call__(self, response: PipelineResponse[Any, Any]) -> None:
        http = response.http_response
        text = http.text()
        path = http.request.url.split("?")[0].split("/", 3)[-1]
        self.responses.append((http.request.method, "/" + path, http.status_code, json.loads(text) if text else None))

    def find(self, method: str, path_end: str, status: int) -> list[Any]:
        return [b for m, p, s, b in self.responses if m == method and p.endswith(path_end) and s == status]


# --- fixtures ---


@pytest.fixture(scope="module")
def vault(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StandIn]:
    seed = json.loads((REPO / "emulator" / "seed.json").read_text())
    seed["vault"] = {"softDeleteRetentionDays": RETENTION_DAYS, "purgeProtection": False}
    seed["managed_identity"]["vaultRole"] = "Key Vault Administrator"
    seed_file = tmp_path_factory.mktemp("certificates") / "seed.json"
    seed_file.write_text(json.dumps(seed))
    instance = start_stand_in("--seed", str(seed_file))
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
async def clients(
    vault: StandIn, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[CertificateClient, SecretClient]]:
    for key, value in vault.identity_env().items():
        monkeypatch.setenv(key, value)
    async with (
        ManagedIdentityCredential() as credential,
        CertificateClient(
            vault.vault_url, credential, verify_challenge_resource=False, connection_verify=vault.ca_bundle
        ) as certificates,
        async_secret_client(vault, credential) as secrets,
    ):
        yield certificates, secrets


@pytest.fixture(scope="module")
def certificate_definitions() -> dict[str, Any]:
    assert CERTIFICATES_SPEC.is_file(), f"Microsoft's certificates spec is missing from {CERTIFICATES_SPEC}"
    return strict(CERTIFICATES_SPEC)


@pytest.fixture(scope="module")
def secret_definitions() -> dict[str, Any]:
    return strict(SECRETS_SPEC)


async def create(
    certificates: CertificateClient, name: str, new: CertificatePolicy, **kwargs: Any
) -> KeyVaultCertificate:
    """The aio create awaits its poller: the certificate once the operation completed."""
    created = await certificates.create_certificate(name, new, **kwargs)
    assert isinstance(created, KeyVaultCertificate), created
    return created


def props(certificate: KeyVaultCertificate) -> CertificateProperties:
    assert certificate.properties is not None
    return certificate.properties


def cer(certificate: KeyVaultCertificate) -> bytes:
    return bytes(certificate.cer or b"")


def policy(**kwargs: Any) -> CertificatePolicy:
    return CertificatePolicy(issuer_name="Self", subject=kwargs.pop("subject", "CN=app.contoso.test"), **kwargs)


def x5t(der: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha1(der, usedforsecurity=False).digest()).decode().rstrip("=")


def self_signed(common_name: str) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=1))
        .not_valid_after(now + timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(f"{common_name}.example")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


# --- create: the pending operation, then the certificate ---


async def test_create_answers_a_pending_operation_then_the_certificate(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, _ = clients
    name, captured = unique("create"), Captured()
    lifetime = [LifetimeAction(CertificatePolicyAction.email_contacts, days_before_expiry=30)]
    created = await create(
        certificates,
        name,
        policy(san_dns_names=["app.contoso.test"], validity_in_months=6, lifetime_actions=lifetime),
        tags={"registration": "app-1"},
        _polling_interval=0,
        raw_response_hook=captured,
    )

    [accepted] = captured.find("POST", f"/certificates/{name}/create", 202)
    assert accepted["status"] == "inProgress" and accepted["cancellation_requested"] is False
    assert accepted["id"] == f"{certificates.vault_url}/certificates/{name}/pending"
    assert accepted["issuer"] == {"name": "Self"} and len(accepted["request_id"]) == 32
    csr = x509.load_der_x509_csr(base64.b64decode(accepted["csr"]))
    assert csr.is_signature_valid and csr.subject.rfc4514_string() == "CN=app.contoso.test"
    completed = captured.find("GET", f"/certificates/{name}/pending", 200)[-1]
    assert completed["status"] == "completed" and completed["target"] == f"{certificates.vault_url}/certificates/{name}"
    assert "status_details" not in completed and completed["request_id"] == accepted["request_id"]
    for body in (accepted, completed):
        assert_matches(certificate_definitions, "CertificateOperation", body)

    bundle = captured.find("GET", f"/certificates/{name}/", 200)[-1]
    assert_matches(certificate_definitions, "CertificateBundle", bundle)
    version = bundle["id"].rsplit("/", 1)[-1]
    assert bundle["kid"] == f"{certificates.vault_url}/keys/{name}/{version}"
    assert bundle["sid"] == f"{certificates.vault_url}/secrets/{name}/{version}"
    der = base64.b64decode(bundle["cer"])
    assert bundle["x5t"] == x5t(der)
    assert bundle["pending"] == {"id": f"{certificates.vault_url}/certificates/{name}/pending"}

    assert created.name == name and cer(created) == der and props(created).tags == {"registration": "app-1"}
    cert = x509.load_der_x509_certificate(der)
    assert cert.subject == cert.issuer and cert.subject.rfc4514_string() == "CN=app.contoso.test"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.contoso.test"]
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).critical
    assert isinstance(cert.public_key(), rsa.RSAPublicKey) and cert.public_key().key_size == 2048  # type: ignore[union-attr]
    # Recorded: nbf ten minutes before creation, exp `validity_months` after it.
    attributes = bundle["attributes"]
    assert attributes["created"] - attributes["nbf"] == 600
    assert int(cert.not_valid_before_utc.timestamp()) == attributes["nbf"]
    assert int(cert.not_valid_after_utc.timestamp()) == attributes["exp"]
    assert 181 <= (attributes["exp"] - attributes["created"]) / 86400 <= 184
    assert attributes["recoveryLevel"] == "CustomizedRecoverable+Purgeable"
    assert attributes["recoverableDays"] == RETENTION_DAYS

    assert created.policy is not None
    assert created.policy.validity_in_months == 6 and created.policy.exportable is True
    assert created.policy.key_type == KeyType.rsa and created.policy.key_size == 2048
    assert created.policy.content_type == CertificateContentType.pkcs12
    [action] = created.policy.lifetime_actions or []
    assert action.action == CertificatePolicyAction.email_contacts and action.days_before_expiry == 30


async def test_creation_can_take_a_while_and_the_poller_waits_it_out(
    vault: StandIn, clients: tuple[CertificateClient, SecretClient]
) -> None:
    certificates, _ = clients
    name, captured = unique("slow"), Captured()
    vault.set_faults(certificateCreation=300)
    try:
        created = await create(certificates, name, policy(), _polling_interval=0.05, raw_response_hook=captured)
    finally:
        vault.clear_faults()

    statuses = [body["status"] for body in captured.find("GET", f"/certificates/{name}/pending", 200)]
    assert statuses[0] == "inProgress" and statuses[-1] == "completed" and len(statuses) >= 3
    assert created.name == name and cer(created)


# --- read, versions, update, policy ---


async def test_versions_are_listed_page_by_page_and_one_version_is_updated(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, _ = clients
    name, captured = unique("versions"), Captured()
    first = await create(certificates, name, policy(), _polling_interval=0)
    second = await create(certificates, name, policy(), _polling_interval=0)
    assert props(first).version != props(second).version

    listed = [
        p.version
        async for p in certificates.list_properties_of_certificate_versions(
            name, max_page_size=1, raw_response_hook=captured
        )
    ]
    assert sorted(map(str, listed)) == sorted([str(props(first).version), str(props(second).version)])
    pages = captured.find("GET", "/versions", 200)
    assert len(pages) == 2 and isinstance(pages[0]["nextLink"], str) and pages[1]["nextLink"] is None
    for page in pages:
        assert_matches(certificate_definitions, "CertificateListResult", page)

    older = await certificates.get_certificate_version(name, str(props(first).version), raw_response_hook=captured)
    assert cer(older) == cer(first) and older.policy is None  # a given version comes without its policy
    updated = await certificates.update_certificate_properties(
        name, str(props(first).version), tags={"retired": "yes"}, enabled=False, raw_response_hook=captured
    )
    assert props(updated).tags == {"retired": "yes"} and props(updated).enabled is False
    assert_matches(certificate_definitions, "CertificateBundle", captured.find("PATCH", "", 200)[-1])
    latest = await certificates.get_certificate(name)
    assert props(latest).version == props(second).version and props(latest).enabled is True
    assert props(latest).tags is None


async def test_the_policy_carries_ec_keys_reuse_and_pem(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, secrets = clients
    name, captured = unique("ec"), Captured()
    ec_policy = policy(
        key_type=KeyType.ec,
        key_curve_name=KeyCurveName.p_384,
        reuse_key=True,
        content_type=CertificateContentType.pem,
        subject="CN=ec.contoso.test, O=Contoso",
    )
    first = await create(certificates, name, ec_policy, _polling_interval=0)
    second = await create(certificates, name, ec_policy, _polling_interval=0)
    read = await certificates.get_certificate_policy(name, raw_response_hook=captured)

    assert_matches(certificate_definitions, "CertificatePolicy", captured.find("GET", "/policy", 200)[-1])
    assert read.key_type == KeyType.ec and read.key_curve_name == KeyCurveName.p_384 and read.reuse_key is True
    assert read.content_type == CertificateContentType.pem and read.subject == "CN=ec.contoso.test, O=Contoso"
    keys = [x509.load_der_x509_certificate(bytes(c.cer or b"")).public_key() for c in (first, second)]
    assert isinstance(keys[0], ec.EllipticCurvePublicKey) and keys[0].curve.name == "secp384r1"
    assert keys[0] == keys[1], "reuse_key keeps the key pair on a new version"

    secret = await secrets.get_secret(name, props(second).version)
    assert secret.properties.content_type == "application/x-pem-file"
    pem = (secret.value or "").encode()
    assert b"-----BEGIN PRIVATE KEY-----" in pem
    assert x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER) == cer(second)
    assert serialization.load_pem_private_key(pem, None).public_key() == keys[1]


# --- the backing secret ---


async def test_each_version_has_a_managed_secret_holding_its_pfx(
    clients: tuple[CertificateClient, SecretClient], secret_definitions: dict[str, Any]
) -> None:
    certificates, secrets = clients
    name, captured = unique("secret"), Captured()
    created = await create(certificates, name, policy(), _polling_interval=0)

    secret = await secrets.get_secret(name, props(created).version, raw_response_hook=captured)
    body = captured.find("GET", f"/secrets/{name}/{props(created).version}", 200)[-1]
    assert_matches(secret_definitions, "SecretBundle", body)
    assert body["managed"] is True and body["kid"] == created.key_id and body["id"] == created.secret_id
    assert secret.properties.content_type == "application/x-pkcs12"
    key, cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert cert is not None and cert.public_bytes(serialization.Encoding.DER) == cer(created)
    assert key is not None and key.public_key() == cert.public_key()
    assert (await secrets.get_secret(name)).properties.version == props(created).version


async def test_a_non_exportable_key_leaves_the_private_key_out_of_the_secret(
    clients: tuple[CertificateClient, SecretClient],
) -> None:
    certificates, secrets = clients
    name = unique("sealed")
    # azure-keyvault-certificates 4.12 sends key_props only when one of them is truthy: exportable=False
    # alone never reaches the service, so the key type goes with it.
    sealed = policy(exportable=False, key_type=KeyType.rsa)
    created = await create(certificates, name, sealed, _polling_interval=0)
    assert created.policy is not None and created.policy.exportable is False

    secret = await secrets.get_secret(name, props(created).version)
    key, cert, others = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert key is None
    # With no key to pair it with, the certificate is a PFX's only (additional) certificate.
    [only] = [c for c in (cert, *others) if c is not None]
    assert only.public_bytes(serialization.Encoding.DER) == cer(created)


async def test_a_certificates_secret_cannot_be_written_or_deleted_as_a_secret(
    clients: tuple[CertificateClient, SecretClient],
) -> None:
    certificates, secrets = clients
    name = unique("managed")
    await create(certificates, name, policy(), _polling_interval=0)

    with pytest.raises(HttpResponseError) as written:
        await secrets.set_secret(name, "overwrite")
    with pytest.raises(HttpResponseError) as deleted:
        await secrets.delete_secret(name, _polling_interval=0)

    assert written.value.status_code == deleted.value.status_code == 403
    assert (await secrets.get_secret(name)).properties.content_type == "application/x-pkcs12"


async def test_a_certificate_cannot_take_a_plain_secrets_name(
    clients: tuple[CertificateClient, SecretClient],
) -> None:
    certificates, secrets = clients
    name = unique("taken")
    await secrets.set_secret(name, "plain")
    with pytest.raises(ResourceExistsError):
        await create(certificates, name, policy(), _polling_interval=0)


# --- import ---


async def test_importing_a_pfx_with_a_password_keeps_its_certificate(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, secrets = clients
    name, captured = unique("import-pfx"), Captured()
    key, cert = self_signed("imported")
    pfx = pkcs12.serialize_key_and_certificates(
        b"imported", key, cert, None, serialization.BestAvailableEncryption(b"pw")
    )

    imported = await certificates.import_certificate(
        name, pfx, password="pw", tags={"source": "import"}, raw_response_hook=captured
    )

    assert_matches(certificate_definitions, "CertificateBundle", captured.find("POST", "/import", 200)[-1])
    der = cert.public_bytes(serialization.Encoding.DER)
    assert cer(imported) == der and props(imported).x509_thumbprint == hashlib.sha1(der).digest()  # noqa: S324
    assert props(imported).tags == {"source": "import"}
    assert imported.policy is not None and imported.policy.issuer_name == "Unknown"
    assert imported.policy.subject == "CN=imported" and imported.policy.san_dns_names == ["imported.example"]
    secret = await secrets.get_secret(name)
    back_key, back_cert, _ = pkcs12.load_key_and_certificates(base64.b64decode(secret.value or ""), None)
    assert back_cert == cert and back_key is not None and back_key.public_key() == key.public_key()


async def test_importing_a_pem_with_its_pkcs8_key(clients: tuple[CertificateClient, SecretClient]) -> None:
    certificates, secrets = clients
    name = unique("import-pem")
    key, cert = self_signed("pem")
    pem = cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    pem_policy = CertificatePolicy.get_default()
    pem_policy._content_type = CertificateContentType.pem

    imported = await certificates.import_certificate(name, pem, policy=pem_policy)

    assert cer(imported) == cert.public_bytes(serialization.Encoding.DER)
    secret = await secrets.get_secret(name)
    assert secret.properties.content_type == "application/x-pem-file"
    assert x509.load_pem_x509_certificate((secret.value or "").encode()) == cert


async def test_importing_without_a_private_key_is_refused(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, _ = clients
    _, cert = self_signed("keyless")
    certificate_only = pkcs12.serialize_key_and_certificates(None, None, cert, None, serialization.NoEncryption())
    captured = Captured()

    with pytest.raises(HttpResponseError) as refused:
        await certificates.import_certificate(unique("keyless"), certificate_only, raw_response_hook=captured)

    assert refused.value.status_code == 400
    assert refused.value.error is not None and refused.value.error.code == "BadParameter"
    assert refused.value.error.message == NO_PRIVATE_KEY
    assert_matches(certificate_definitions, "KeyVaultError", captured.find("POST", "/import", 400)[-1])


# --- delete, recover, purge ---


async def test_delete_recover_and_purge(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, secrets = clients
    name, captured = unique("lifecycle"), Captured()
    created = await create(certificates, name, policy(), _polling_interval=0)

    deleted = await certificates.delete_certificate(name, _polling_interval=0, raw_response_hook=captured)
    assert deleted.recovery_id == f"{certificates.vault_url}/deletedcertificates/{name}"
    assert deleted.scheduled_purge_date is not None and deleted.deleted_on is not None
    assert (deleted.scheduled_purge_date - deleted.deleted_on).days == RETENTION_DAYS
    assert_matches(certificate_definitions, "DeletedCertificateBundle", captured.find("DELETE", name, 200)[-1])
    assert bytes((await certificates.get_deleted_certificate(name)).cer or b"") == cer(created)
    with pytest.raises(ResourceNotFoundError):
        await certificates.get_certificate(name)
    with pytest.raises(ResourceNotFoundError):
        await secrets.get_secret(name)  # the certificate's secret goes with it

    with pytest.raises(ResourceExistsError) as conflict:
        await create(certificates, name, policy(), _polling_interval=0, raw_response_hook=captured)
    assert conflict.value.error is not None and conflict.value.error.code == "Conflict"
    assert conflict.value.error.innererror == {"code": "ObjectIsDeletedButRecoverable"}
    assert_matches(certificate_definitions, "KeyVaultError", captured.find("POST", "/create", 409)[-1])

    recovered = await certificates.recover_deleted_certificate(name, _polling_interval=0)
    assert cer(recovered) == cer(created)
    assert (await secrets.get_secret(name)).properties.version == props(created).version

    await certificates.delete_certificate(name, _polling_interval=0)
    await certificates.purge_deleted_certificate(name)
    with pytest.raises(ResourceNotFoundError) as gone:
        await certificates.get_deleted_certificate(name, raw_response_hook=captured)
    assert gone.value.error is not None and gone.value.error.code == "CertificateNotFound"
    assert_matches(
        certificate_definitions, "KeyVaultError", captured.find("GET", f"/deletedcertificates/{name}", 404)[-1]
    )
    again = await create(certificates, name, policy(), _polling_interval=0)
    assert props(again).version != props(created).version


async def test_deletion_and_recovery_complete_after_their_call_and_the_pollers_wait(
    vault: StandIn, clients: tuple[CertificateClient, SecretClient]
) -> None:
    certificates, _ = clients
    name, captured = unique("background"), Captured()
    await create(certificates, name, policy(), _polling_interval=0)
    vault.set_faults(certificateDeletion=200, certificateRecovery=200)
    try:
        await certificates.delete_certificate(name, _polling_interval=0.05, raw_response_hook=captured)
        await certificates.recover_deleted_certificate(name, _polling_interval=0.05, raw_response_hook=captured)
    finally:
        vault.clear_faults()

    assert captured.find("GET", f"/deletedcertificates/{name}", 404), "the deletion was seen in progress"
    assert captured.find("GET", f"/certificates/{name}/", 404), "the recovery was seen in progress"
    assert (await certificates.get_certificate(name)).name == name


# --- protocol ---


async def test_the_challenge_and_a_missing_certificate_answer_key_vault_errors(
    clients: tuple[CertificateClient, SecretClient], certificate_definitions: dict[str, Any]
) -> None:
    certificates, _ = clients
    captured = Captured()
    http_challenge_cache.clear()  # make the client discover the challenge again
    try:
        with pytest.raises(ResourceNotFoundError) as missing:
            await certificates.get_certificate(unique("missing"), raw_response_hook=captured)
    finally:
        http_challenge_cache.clear()

    [challenge] = [b for _, _, s, b in captured.responses if s == 401]
    assert_matches(certificate_definitions, "KeyVaultError", challenge)
    assert missing.value.error is not None and missing.value.error.code == "CertificateNotFound"
    assert_matches(certificate_definitions, "KeyVaultError", [b for _, _, s, b in captured.responses if s == 404][-1])


async def test_a_secrets_officer_may_not_touch_certificates(
    vault: StandIn, clients: tuple[CertificateClient, SecretClient]
) -> None:
    certificates, _ = clients
    object_id = str(vault.info["managed_identity_object_id"])
    vault.admin("PUT", "/vault/role-assignments", {"principalId": object_id, "role": "Key Vault Secrets Officer"})
    try:
        with pytest.raises(HttpResponseError) as denied:
            await certificates.get_certificate(unique("denied"))
    finally:
        vault.admin("PUT", "/vault/role-assignments", {"principalId": object_id, "role": "Key Vault Administrator"})

    assert denied.value.status_code == 403
    assert denied.value.error is not None and denied.value.error.innererror == {"code": "ForbiddenByRbac"}
    assert "Microsoft.KeyVault/vaults/certificates/read" in (denied.value.error.message or "")
