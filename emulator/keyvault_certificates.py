"""Azure Key Vault's certificates API: self-signed create with its pending operation, import, versions, policy, soft delete, and the managed secret behind every version.

Shapes follow Microsoft's REST spec (certificates, 2025-07-01, checked against in
tests/emulator/test_keyvault_certificates.py) and the SDKs' live-test recordings named below. The
protocol around them (api-version, challenge, RBAC, paging, error shape) is keyvault.py's, reused.

A certificate version is a real X.509 certificate made with `cryptography`: its key is the
certificate's key (`kid`, /keys/{name}/{version}, not served here) and its secret (`sid`) is a
managed secret of the same name and version, served by keyvault.py's secret routes, holding the
PFX or PEM. "When a Key Vault certificate is created, an addressable key and secret are also
created with the same name" (learn.microsoft.com/azure/key-vault/certificates/about-certificates).
"""

from __future__ import annotations

import base64
import calendar
import contextlib
import hashlib
import ipaddress
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ServiceError, vault_error
from .keyvault import VERSION_PATTERN, KeyVaultService
from .state import CertificateRecord, CertificateVersion, JsonObject, SecretRecord, SecretVersion

# Built-in roles' certificate data actions (learn.microsoft.com/azure/key-vault/general/rbac-guide):
# Certificates Officer may do anything with certificates, a Certificate User and a Reader may read them.
CERTIFICATE_ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "Key Vault Administrator": frozenset({"*"}),
    "Key Vault Certificates Officer": frozenset({"*"}),
    "Key Vault Certificate User": frozenset({"read"}),
    "Key Vault Reader": frozenset({"read"}),
}

PKCS12 = "application/x-pkcs12"
PEM = "application/x-pem-file"
RSA_SIZES = (2048, 3072, 4096)  # KeyProperties.key_size in the spec: "2048, 3072, or 4096 for RSA"
CURVES: dict[str, ec.EllipticCurve] = {
    "P-256": ec.SECP256R1(),
    "P-384": ec.SECP384R1(),
    "P-521": ec.SECP521R1(),
    "P-256K": ec.SECP256K1(),
}
CURVE_HASHES: dict[str, hashes.SHA256 | hashes.SHA384 | hashes.SHA512] = {
    "P-256": hashes.SHA256(),
    "P-384": hashes.SHA384(),
    "P-521": hashes.SHA512(),
    "P-256K": hashes.SHA256(),
}
KEY_USAGES = (
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
)
# A self-signed certificate's defaults as Key Vault filled them into a policy that gave none: RSA 2048,
# exportable, PKCS#12, server and client authentication, 12 months, auto-renew at 80 % of its life
# (Azure/azure-sdk-for-js, keyvault-certificates recording "can get a certificate's secret in PKCS12 format").
DEFAULT_EKUS = (ExtendedKeyUsageOID.SERVER_AUTH.dotted_string, ExtendedKeyUsageOID.CLIENT_AUTH.dotted_string)
DEFAULT_RSA_USAGE = ("digitalSignature", "keyEncipherment")
DEFAULT_EC_USAGE = ("digitalSignature",)  # keyEncipherment has no meaning for an EC key; Key Vault's: unknown
DEFAULT_VALIDITY_MONTHS = 12
DEFAULT_LIFETIME_ACTIONS = ({"trigger": {"lifetime_percentage": 80}, "action": {"action_type": "AutoRenew"}},)
BACKDATE_SECONDS = 600  # recorded: nbf is ten minutes before the version's creation
IN_PROGRESS_DETAILS = (
    "Pending certificate created. Certificate request is in progress. This may take some time based on the "
    "issuer provider. Please check again later."
)
NO_PRIVATE_KEY = (
    "No certificate with private key found in the specified X.509 certificate content. Please specify X.509 "
    "certificate content with only one certificate containing private key."
)
UPN_OID = x509.ObjectIdentifier("1.3.6.1.4.1.311.20.2.3")  # Microsoft's user principal name otherName


class KeyVaultCertificates:
    """The /certificates and /deletedcertificates routes of the vault that keyvault.py serves."""

    def __init__(self, secrets_api: KeyVaultService) -> None:
        self.kv = secrets_api
        self.world = secrets_api.world
        self.vault = secrets_api.vault
        self.base = secrets_api.base

    def routes(self) -> list[Route]:
        # The fixed segments first: "/certificates/{name}/{version}" would take them all.
        return [
            Route("/certificates", self.list_certificates, methods=["GET"]),
            Route("/certificates/{name}/create", self.create, methods=["POST"]),
            Route("/certificates/{name}/import", self.import_certificate, methods=["POST"]),
            Route("/certificates/{name}/pending", self.pending, methods=["GET"]),
            Route("/certificates/{name}/policy", self.policy, methods=["GET"]),
            Route("/certificates/{name}/versions", self.list_versions, methods=["GET"]),
            Route("/certificates/{name}", self.delete, methods=["DELETE"]),
            # The SDK asks for the latest version as "/certificates/{name}/" (empty version segment).
            Route("/certificates/{name}/", self.certificate, methods=["GET", "PATCH"]),
            Route("/certificates/{name}/{version}", self.certificate, methods=["GET", "PATCH"]),
            Route("/deletedcertificates/{name}", self.deleted, methods=["GET", "DELETE"]),
            Route("/deletedcertificates/{name}/recover", self.recover, methods=["POST"]),
        ]

    # --- protocol ---
    def _authorize(self, request: Request, action: str) -> str:
        self.kv._authorize(request, action, "certificates", CERTIFICATE_ROLE_ACTIONS)
        return self.kv._valid_name(request.path_params["name"])

    def _now(self) -> int:
        return int(self.world.clock.now().timestamp())

    # --- lookups ---
    def _purge_expired_deletions(self) -> None:
        now = self._now()
        for key in [
            k for k, r in self.vault.deleted_certificates.items() if (r.scheduled_purge_date or now + 1) <= now
        ]:
            del self.vault.deleted_certificates[key]

    def _settle(self, record: CertificateRecord) -> None:
        """Completes a create whose issuance time has come: the version, its secret and the operation."""
        if record.pending is None or record.operation is None:
            return
        if not self.world.replication.visible(_creating(record.name)):
            return
        version, record.pending = record.pending, None
        record.versions.append(version)
        self._back(record, version, record.operation["key_pem_exportable"])
        record.operation["status"] = "completed"
        self.world.touch()

    def _record(self, name: str, with_versions: bool = True) -> CertificateRecord:
        record = self.vault.certificates.get(name.lower())
        if record is not None:
            self._settle(record)
        if (
            record is None
            or (with_versions and not record.versions)
            or not self.world.replication.visible(_recovering(name))
        ):
            raise _not_found(name)
        return record

    def _deleted_record(self, name: str) -> CertificateRecord:
        self._purge_expired_deletions()
        record = self.vault.deleted_certificates.get(name.lower())
        if record is None or not self.world.replication.visible(_deleting(name)):
            raise vault_error(404, "CertificateNotFound", f"Deleted Certificate not found: {name}")
        return record

    # --- wire shapes ---
    def _attributes(self, version: CertificateVersion) -> JsonObject:
        return {
            "enabled": version.enabled,
            "nbf": version.not_before,
            "exp": version.expires,
            "created": version.created,
            "updated": version.updated,
            "recoveryLevel": self.kv._recovery_level(),
            "recoverableDays": self.vault.soft_delete_retention_days,
        }

    def _policy_body(self, record: CertificateRecord) -> JsonObject:
        return {"id": f"{self.base}/certificates/{record.name}/policy", **record.policy}

    def _bundle(self, record: CertificateRecord, version: CertificateVersion, with_policy: bool) -> JsonObject:
        """CertificateBundle as recorded: ids of the certificate, its key and its secret, x5t, cer, attributes."""
        name, ver = record.name, version.version
        body: JsonObject = {
            "id": f"{self.base}/certificates/{name}/{ver}",
            "kid": f"{self.base}/keys/{name}/{ver}",
            "sid": f"{self.base}/secrets/{name}/{ver}",
            "x5t": _x5t(version.cer),
            "cer": version.cer,
            "attributes": self._attributes(version),
        }
        if version.tags is not None:
            body["tags"] = version.tags
        if with_policy:
            body["policy"] = self._policy_body(record)
        if version.from_create:
            # Recorded on every certificate issued through /create, though the spec does not define it.
            body["pending"] = {"id": f"{self.base}/certificates/{name}/pending"}
        return body

    def _item(self, record: CertificateRecord, version: CertificateVersion) -> JsonObject:
        item: JsonObject = {
            "id": f"{self.base}/certificates/{record.name}/{version.version}",
            "x5t": _x5t(version.cer),
            "attributes": self._attributes(version),
        }
        if version.tags is not None:
            item["tags"] = version.tags
        return item

    def _deleted_bundle(self, record: CertificateRecord) -> JsonObject:
        body = self._bundle(record, record.latest, with_policy=True)
        body.update(
            {
                "recoveryId": f"{self.base}/deletedcertificates/{record.name}",
                "deletedDate": record.deleted_date,
                "scheduledPurgeDate": record.scheduled_purge_date,
            }
        )
        return body

    def _operation_body(self, record: CertificateRecord) -> JsonObject:
        """CertificateOperation as recorded: in progress with status_details, then completed with a target."""
        operation = record.operation
        assert operation is not None
        body: JsonObject = {
            "id": f"{self.base}/certificates/{record.name}/pending",
            "issuer": {"name": operation["issuer"]},
            "csr": operation["csr"],
            "cancellation_requested": False,
            "status": operation["status"],
        }
        if operation["status"] == "inProgress":
            body["status_details"] = IN_PROGRESS_DETAILS
        else:
            body["target"] = f"{self.base}/certificates/{record.name}"
        body["request_id"] = operation["request_id"]
        return body

    # --- the managed secret ---
    def _back(self, record: CertificateRecord, version: CertificateVersion, exportable: bool) -> None:
        """The version's secret: the PFX (base64) or PEM, without the private key when the key is not exportable.

        "Non-exportable: ... the private key isn't part of the value when it's retrieved as a secret"
        (learn.microsoft.com/azure/key-vault/certificates/how-to-export-certificate)."""
        content_type = record.policy["secret_props"]["contentType"]
        cert = x509.load_der_x509_certificate(base64.b64decode(version.cer))
        key = _load_key(version.key_pem) if exportable else None
        if content_type == PEM:
            value = cert.public_bytes(serialization.Encoding.PEM).decode()
            if key is not None:
                value = _pkcs8_pem(key) + value
        else:
            pfx = pkcs12.serialize_key_and_certificates(
                None,
                key,
                cert,
                None,
                serialization.NoEncryption(),
            )
            value = base64.b64encode(pfx).decode()
        secret = self.vault.secrets.get(record.name.lower())
        if secret is None:
            secret = SecretRecord(name=record.name)
            self.vault.add_record(secret)
        secret.versions.append(
            SecretVersion(
                name=record.name,
                version=version.version,
                value=value,
                content_type=content_type,
                tags=None,
                enabled=version.enabled,
                not_before=version.not_before,
                expires=version.expires,
                created=version.created,
                updated=version.created,
                managed=True,
            )
        )

    # --- routes ---
    async def create(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "create/action")
        body = await self.kv._json_body(request)
        self._refuse_taken(name, "Certificate")
        record = self.vault.certificates.get(name.lower())
        if record is not None:
            self._settle(record)
        given = body.get("policy")
        if given is None and record is None:
            raise vault_error(400, "BadParameter", "The policy of a new certificate is required.")
        previous = record.policy if record is not None else None
        now = self._now()
        policy = _parse_policy(given, previous, now) if given is not None else dict(previous or {})
        issuer = policy["issuer"]["name"]
        if issuer.lower() != "self":
            # Only self-signed issuance is modelled; an issuer object (DigiCert, GlobalSign) is not.
            raise vault_error(400, "BadParameter", f"Issuer {issuer} is not supported by this stand-in.")
        common = self.kv._parse_common({"tags": body.get("tags"), "attributes": body.get("attributes")})
        key_props = policy["key_props"]
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | None = None
        if record is not None and record.versions and key_props.get("reuse_key"):
            key = _load_key(record.latest.key_pem)
        if key is None:
            key = _new_key(key_props)
        csr, cert = _issue(policy, key, now)
        if record is None:
            record = CertificateRecord(name=name, policy=policy)
            self.vault.certificates[name.lower()] = record
        record.policy = policy
        record.pending = CertificateVersion(
            name=record.name,
            version=uuid.uuid4().hex,
            cer=base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            key_pem=_pkcs8_pem(key),
            tags=common.get("tags"),
            enabled=common.get("enabled", True),
            not_before=int(cert.not_valid_before_utc.timestamp()),
            expires=int(cert.not_valid_after_utc.timestamp()),
            created=now,
            updated=now,
            from_create=True,
        )
        request_id = uuid.uuid4().hex
        record.operation = {
            "issuer": policy["issuer"]["name"],
            "csr": base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode(),
            "status": "inProgress",
            "request_id": request_id,
            "key_pem_exportable": policy["key_props"]["exportable"],
        }
        # Issuance completes after the call: recorded 202 "inProgress", then GET /pending until "completed".
        # The stand-in's delay is the `certificateCreation` lag (0: complete at the next look).
        self.world.replication.created("certificateCreation", _creating(name))
        self.world.touch()
        api_version = request.query_params["api-version"]
        headers = {
            "Location": f"{self.base}/certificates/{record.name}/pending?api-version={api_version}"
            f"&request_id={request_id}",
            "Retry-After": "10",
        }
        return JSONResponse(self._operation_body(record), status_code=202, headers=headers)

    async def pending(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "read")
        record = self.vault.certificates.get(name.lower())
        if record is None or record.operation is None:
            # Key Vault's answer for a certificate that has no operation: unknown.
            raise vault_error(404, "CertificateNotFound", f"Pending certificate not found: {name}")
        self._settle(record)
        response = JSONResponse(self._operation_body(record))
        if record.operation["status"] == "inProgress":
            response.headers["Retry-After"] = "10"
        return response

    async def import_certificate(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "import/action")
        body = await self.kv._json_body(request)
        self._refuse_taken(name, "Certificate")
        value = body.get("value")
        if not isinstance(value, str):
            raise vault_error(400, "BadParameter", "The parameter 'value' is required and must be a string.")
        password = body.get("pwd")
        if password is not None and not isinstance(password, str):
            raise vault_error(400, "BadParameter", "The parameter 'pwd' must be a string.")
        given = body.get("policy")
        if given is not None and not isinstance(given, dict):
            raise vault_error(400, "BadParameter", "The parameter 'policy' must be an object.")
        content_type = ((given or {}).get("secret_props") or {}).get("contentType") or PKCS12
        key, cert = _read_import(value, password, content_type)
        common = self.kv._parse_common({"tags": body.get("tags"), "attributes": body.get("attributes")})
        now = self._now()
        record = self.vault.certificates.get(name.lower())
        if record is not None:
            self._settle(record)
        policy = _imported_policy(given, cert, key, now)
        if record is None:
            record = CertificateRecord(name=name, policy=policy)
            self.vault.certificates[name.lower()] = record
        record.policy = policy
        version = CertificateVersion(
            name=record.name,
            version=uuid.uuid4().hex,
            cer=base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode(),
            key_pem=_pkcs8_pem(key),
            tags=common.get("tags"),
            enabled=common.get("enabled", True),
            not_before=int(cert.not_valid_before_utc.timestamp()),
            expires=int(cert.not_valid_after_utc.timestamp()),
            created=now,
            updated=now,
        )
        record.versions.append(version)
        self._back(record, version, policy["key_props"]["exportable"])
        self.world.touch()
        return JSONResponse(self._bundle(record, version, with_policy=True))

    async def certificate(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "update/action" if request.method == "PATCH" else "read")
        version_id = request.path_params.get("version", "")
        if version_id and not VERSION_PATTERN.match(version_id):
            raise _not_found(f"{name}/{version_id}")
        record = self._record(name)
        version = record.version(version_id) if version_id else record.latest
        if version is None:
            raise _not_found(f"{name}/{version_id}")
        if request.method == "PATCH":
            body = await self.kv._json_body(request)
            parsed = self.kv._parse_common({"tags": body.get("tags"), "attributes": body.get("attributes")})
            if "tags" in parsed:
                version.tags = parsed["tags"]
            if "enabled" in parsed:
                version.enabled = parsed["enabled"]
                # The secret follows its certificate's enabled state: assumed (unknown), so a disabled
                # certificate's secret is refused like any disabled secret.
                secret = self.vault.secrets.get(record.name.lower())
                backing = secret.version(version.version) if secret is not None else None
                if backing is not None:
                    backing.enabled = version.enabled
            version.updated = self._now()
            self.world.touch()
        # The latest version comes with its policy; a given version without (the SDK's get_certificate_version).
        return JSONResponse(self._bundle(record, version, with_policy=not version_id))

    async def policy(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "read")
        return JSONResponse(self._policy_body(self._record(name)))

    async def list_certificates(self, request: Request) -> JSONResponse:
        """GET /certificates: each certificate's latest version, its id versionless (CertificateItem in the
        REST spec, tests/emulator/spec), paged like the secrets listing."""
        self.kv._authorize(request, "read", "certificates", CERTIFICATE_ROLE_ACTIONS)
        items = []
        for record in sorted(self.vault.certificates.values(), key=lambda r: r.name.lower()):
            self._settle(record)
            item = self._item(record, record.latest)
            item["id"] = f"{self.base}/certificates/{record.name}"
            items.append(item)
        return self.kv._page(request, "/certificates", items)

    async def list_versions(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "read")
        record = self.vault.certificates.get(name.lower())
        if record is not None:
            self._settle(record)
        # A name the vault does not hold lists no versions, as for secrets (keyvault.py).
        items = [self._item(record, v) for v in record.versions] if record is not None else []
        return self.kv._page(request, f"/certificates/{record.name if record else name}/versions", items)

    async def delete(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "delete")
        record = self._record(name)
        now = self._now()
        record.deleted_date = now
        record.scheduled_purge_date = now + self.vault.soft_delete_retention_days * 86400
        del self.vault.certificates[name.lower()]
        # "Deletes all versions of a certificate object along with its associated policy" (spec); its
        # secret (and key) go with it, held in the deleted certificate until it is recovered or purged.
        if name.lower() in self.vault.secrets:
            record.secret = self.vault.remove_record(name)
        self.vault.deleted_certificates[name.lower()] = record
        # Soft delete completes after the call, as for secrets: the SDKs' certificate delete recordings
        # poll GET /deletedcertificates/{name} through 404 "Deleted Certificate not found".
        self.world.replication.created("certificateDeletion", _deleting(name))
        self.world.touch()
        return JSONResponse(self._deleted_bundle(record))

    async def deleted(self, request: Request) -> Response:
        name = self._authorize(request, "read" if request.method == "GET" else "purge/action")
        record = self._deleted_record(name)
        if request.method == "GET":
            return JSONResponse(self._deleted_bundle(record))
        if self.vault.purge_protection:
            raise vault_error(
                403,
                "Forbidden",
                f'Operation "purge" is not allowed because purge protection is enabled for this vault. Key Vault '
                f"service will automatically purge certificate {record.name} after the retention period has passed.",
            )
        del self.vault.deleted_certificates[name.lower()]
        self.world.touch()
        return Response(status_code=204)

    async def recover(self, request: Request) -> JSONResponse:
        name = self._authorize(request, "recover/action")
        record = self._deleted_record(name)
        del self.vault.deleted_certificates[name.lower()]
        record.deleted_date = None
        record.scheduled_purge_date = None
        self.vault.certificates[name.lower()] = record
        if record.secret is not None:
            self.vault.add_record(record.secret)
            record.secret = None
        # Recovery completes after the call too: GET /certificates/{name}/ answers 404 meanwhile.
        self.world.replication.created("certificateRecovery", _recovering(name))
        self.world.touch()
        return JSONResponse(self._bundle(record, record.latest, with_policy=True))

    def _refuse_taken(self, name: str, kind: str) -> None:
        key = name.lower()
        self._purge_expired_deletions()
        if key in self.vault.deleted_certificates:
            # Recorded body: rcl-letsencrypt-auto-ssl/Lets-Encrypt-Auto issue 16 (third-party).
            raise vault_error(
                409,
                "Conflict",
                f"{kind} {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the certificate can only be recovered or purged.",
                inner_code="ObjectIsDeletedButRecoverable",
            )
        if key not in self.vault.certificates and (key in self.vault.secrets or key in self.vault.deleted_secrets):
            # A plain secret holds the name the certificate's secret needs. Key Vault's answer: unknown.
            raise vault_error(409, "Conflict", f"A secret named {name} already exists in this key vault.")


# --- names for background completion (state.Replication) ---


def _creating(name: str) -> str:
    return f"vault-creating-certificate/{name.lower()}"


def _deleting(name: str) -> str:
    return f"vault-deleting-certificate/{name.lower()}"


def _recovering(name: str) -> str:
    return f"vault-recovering-certificate/{name.lower()}"


def _not_found(name: str) -> ServiceError:
    # Recorded: Azure/azure-sdk-for-js keyvault-certificates "can get a certificate (non existing)".
    return vault_error(404, "CertificateNotFound", f"Certificate not found: {name}")


# --- X.509 ---


def _x5t(cer: str) -> str:
    """The thumbprint: base64url (unpadded) SHA-1 of the DER certificate (recorded x5t are 27 characters)."""
    digest = hashlib.sha1(base64.b64decode(cer), usedforsecurity=False).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _load_key(pem: str) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(pem.encode(), None)
    assert isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)
    return key


def _pkcs8_pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _bad(message: str) -> ServiceError:
    return vault_error(400, "BadParameter", message)


def _parse_policy(given: Any, previous: JsonObject | None, now: int) -> JsonObject:
    """A policy as sent, with Key Vault's defaults filled in (recorded; see the constants above)."""
    if not isinstance(given, dict):
        raise _bad("The parameter 'policy' must be an object.")
    key_in = _object(given, "key_props")
    secret_in = _object(given, "secret_props")
    x509_in = _object(given, "x509_props")
    issuer_in = _object(given, "issuer")
    attributes_in = _object(given, "attributes")

    kty = key_in.get("kty") or "RSA"
    if kty not in ("RSA", "RSA-HSM", "EC", "EC-HSM"):
        raise _bad(f"Key type {kty} is not supported for certificates.")
    key_props: JsonObject = {"exportable": _bool(key_in, "exportable", True), "kty": kty}
    if kty.startswith("RSA"):
        size = key_in.get("key_size") or 2048
        if size not in RSA_SIZES:
            raise _bad(f"Key size {size} is not supported; use one of {', '.join(map(str, RSA_SIZES))}.")
        key_props["key_size"] = size
    key_props["reuse_key"] = _bool(key_in, "reuse_key", False)
    if kty.startswith("EC"):
        curve = key_in.get("crv") or "P-256"
        if curve not in CURVES:
            raise _bad(f"Curve {curve} is not supported; use one of {', '.join(CURVES)}.")
        key_props["crv"] = curve

    content_type = secret_in.get("contentType") or PKCS12
    if content_type not in (PKCS12, PEM):
        raise _bad(f"Content type {content_type} is not supported; use {PKCS12} or {PEM}.")

    subject = x509_in.get("subject")
    sans = _object(x509_in, "sans")
    if not subject and not any(sans.get(k) for k in ("emails", "dns_names", "upns", "uris", "ipAddresses")):
        raise _bad("Either the subject or a subject alternative name is required.")
    if subject is not None:
        _subject_name(subject)  # refuse a malformed name now rather than at issuance
    months = x509_in.get("validity_months") or DEFAULT_VALIDITY_MONTHS
    if isinstance(months, bool) or not isinstance(months, int) or months < 1:
        raise _bad("validity_months must be a positive integer.")
    usages = x509_in.get("key_usage") or list(DEFAULT_RSA_USAGE if kty.startswith("RSA") else DEFAULT_EC_USAGE)
    if not isinstance(usages, list) or any(u not in KEY_USAGES for u in usages):
        raise _bad(f"key_usage must list values among {', '.join(KEY_USAGES)}.")
    ekus = x509_in.get("ekus") or list(DEFAULT_EKUS)
    x509_props: JsonObject = {}
    if subject is not None:
        x509_props["subject"] = subject
    x509_props.update(
        {
            "sans": {k: list(v) for k, v in sans.items() if v},
            "ekus": list(ekus),
            "key_usage": list(usages),
            "validity_months": months,
            # Recorded beside the spec's properties, which do not define it.
            "basic_constraints": {"ca": False},
        }
    )
    actions = given.get("lifetime_actions")
    lifetime_actions = [dict(a) for a in DEFAULT_LIFETIME_ACTIONS] if actions is None else _lifetime_actions(actions)
    issuer: JsonObject = {"name": issuer_in.get("name") or "Self"}
    for optional in ("cty", "cert_transparency"):
        if issuer_in.get(optional) is not None:
            issuer[optional] = issuer_in[optional]
    created = (previous or {}).get("attributes", {}).get("created", now)
    return {
        "key_props": key_props,
        "secret_props": {"contentType": content_type},
        "x509_props": x509_props,
        "lifetime_actions": lifetime_actions,
        "issuer": issuer,
        "attributes": {"enabled": _bool(attributes_in, "enabled", True), "created": created, "updated": now},
    }


def _lifetime_actions(actions: Any) -> list[JsonObject]:
    if not isinstance(actions, list):
        raise _bad("lifetime_actions must be an array.")
    parsed = []
    for action in actions:
        trigger = action.get("trigger") if isinstance(action, dict) else None
        kind = (action.get("action") or {}).get("action_type") if isinstance(action, dict) else None
        if not isinstance(trigger, dict) or kind not in ("EmailContacts", "AutoRenew"):
            raise _bad("A lifetime action needs a trigger and an action_type of EmailContacts or AutoRenew.")
        percentage, days = trigger.get("lifetime_percentage"), trigger.get("days_before_expiry")
        if (percentage is None) == (days is None):
            raise _bad("A lifetime action's trigger takes lifetime_percentage or days_before_expiry, not both.")
        if percentage is not None and not (isinstance(percentage, int) and 1 <= percentage <= 99):
            raise _bad("lifetime_percentage must be between 1 and 99.")  # the spec's minimum and maximum
        if days is not None and not (isinstance(days, int) and days >= 1):
            raise _bad("days_before_expiry must be a positive integer.")
        key = "lifetime_percentage" if percentage is not None else "days_before_expiry"
        parsed.append({"trigger": {key: trigger[key]}, "action": {"action_type": kind}})
    return parsed


def _object(container: JsonObject, key: str) -> JsonObject:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"The parameter '{key}' must be an object.")
    return value


def _bool(container: JsonObject, key: str, default: bool) -> bool:
    value = container.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _bad(f"The parameter '{key}' must be a boolean.")
    return value


def _subject_name(subject: str) -> x509.Name:
    """An X.500 name from Key Vault's subject ("CN=app, O=Contoso"; attribute types in any case)."""
    normalized = re.sub(r"(^|,)\s*([A-Za-z]+)\s*=", lambda m: f"{m[1]}{m[2].upper()}=", subject.strip())
    overrides = {"E": NameOID.EMAIL_ADDRESS, "S": NameOID.STATE_OR_PROVINCE_NAME, "SERIALNUMBER": NameOID.SERIAL_NUMBER}
    try:
        name = x509.Name.from_rfc4514_string(normalized, overrides)
    except ValueError as exc:
        raise _bad(f"The subject name {subject} is not a valid X.500 distinguished name.") from exc
    if not len(name):
        raise _bad(f"The subject name {subject} is not a valid X.500 distinguished name.")
    return name


def _new_key(key_props: JsonObject) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if str(key_props["kty"]).startswith("RSA"):
        return rsa.generate_private_key(public_exponent=65537, key_size=key_props["key_size"])
    return ec.generate_private_key(CURVES[key_props["crv"]])


def _add_months(moment: datetime, months: int) -> datetime:
    years, month = divmod(moment.month - 1 + months, 12)
    year = moment.year + years
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def _alternative_names(sans: JsonObject) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName(d) for d in sans.get("dns_names", [])]
    names += [x509.RFC822Name(e) for e in sans.get("emails", [])]
    names += [x509.UniformResourceIdentifier(u) for u in sans.get("uris", [])]
    for upn in sans.get("upns", []):
        encoded = upn.encode()  # DER UTF8String: tag 12, short length (a UPN is under 128 bytes)
        if len(encoded) > 127:
            raise _bad(f"The user principal name {upn} is too long.")
        names.append(x509.OtherName(UPN_OID, bytes([12, len(encoded)]) + encoded))
    for address in sans.get("ipAddresses", []):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(address)))
        except ValueError as exc:
            raise _bad(f"{address} is not an IP address.") from exc
    return names


def _issue(
    policy: JsonObject, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, now: int
) -> tuple[x509.CertificateSigningRequest, x509.Certificate]:
    """The CSR the operation reports and the self-signed certificate, with the recorded extensions:
    key usage (critical), basic constraints (not a CA), EKUs, SANs, subject and authority key ids."""
    props = policy["x509_props"]
    subject = _subject_name(props["subject"]) if props.get("subject") else x509.Name([])
    usage = set(props["key_usage"])
    key_usage = x509.KeyUsage(
        digital_signature="digitalSignature" in usage,
        content_commitment="nonRepudiation" in usage,
        key_encipherment="keyEncipherment" in usage,
        data_encipherment="dataEncipherment" in usage,
        key_agreement="keyAgreement" in usage,
        key_cert_sign="keyCertSign" in usage,
        crl_sign="cRLSign" in usage,
        encipher_only="encipherOnly" in usage and "keyAgreement" in usage,
        decipher_only="decipherOnly" in usage and "keyAgreement" in usage,
    )
    try:
        ekus = x509.ExtendedKeyUsage([x509.ObjectIdentifier(e) for e in props["ekus"]])
    except ValueError as exc:
        raise _bad("ekus must be object identifiers such as 1.3.6.1.5.5.7.3.1.") from exc
    sans = _alternative_names(props["sans"])
    algorithm = hashes.SHA256() if isinstance(key, rsa.RSAPrivateKey) else CURVE_HASHES[policy["key_props"]["crv"]]
    request = x509.CertificateSigningRequestBuilder().subject_name(subject)
    request = request.add_extension(key_usage, critical=True).add_extension(ekus, critical=False)
    request = request.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
    if sans:
        request = request.add_extension(x509.SubjectAlternativeName(sans), critical=not len(subject))
    csr = request.sign(key, algorithm)
    created = datetime.fromtimestamp(now, UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(int.from_bytes(secrets.token_bytes(16), "big") >> 1 or 1)
        .not_valid_before(created - timedelta(seconds=BACKDATE_SECONDS))
        .not_valid_after(_add_months(created, props["validity_months"]))
        .add_extension(key_usage, critical=True)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(ekus, critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=not len(subject))
    return csr, builder.sign(key, algorithm)


def _read_import(
    value: str, password: str | None, content_type: str
) -> tuple[rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The key and its certificate from a base64 PFX, or a PEM (PKCS#8 key, as the spec requires, and certificates)."""
    try:
        data = base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise _bad("The certificate value is not valid base64.") from exc
    secret = password.encode() if password else None
    key: Any
    if content_type == PEM:
        try:
            certificates = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise _bad("The specified PEM X.509 certificate content is in an unexpected format.") from exc
        block = re.search(
            rb"-----BEGIN (ENCRYPTED )?PRIVATE KEY-----.+?-----END (ENCRYPTED )?PRIVATE KEY-----", data, re.S
        )
        if block is None:
            raise _bad(NO_PRIVATE_KEY)
        try:
            key = serialization.load_pem_private_key(block.group(0), secret)
        except (ValueError, TypeError) as exc:
            raise _bad("The private key in the specified PEM content cannot be read.") from exc
    else:
        try:
            key, certificate, extra = pkcs12.load_key_and_certificates(data, secret)
        except ValueError as exc:
            raise _bad("The specified PKCS#12 content cannot be read; check its password.") from exc
        certificates = [c for c in (certificate, *extra) if c is not None]
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise _bad(NO_PRIVATE_KEY)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for certificate in certificates:
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        if spki == public:
            return key, certificate
    raise _bad(NO_PRIVATE_KEY)


def _imported_policy(
    given: JsonObject | None, cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, now: int
) -> JsonObject:
    """The policy of an imported certificate: what was sent, the certificate's own names and usages, and
    issuer "Unknown" (Key Vault did not issue it; the spec's IssuerParameters names 'Self' and 'Unknown')."""
    given = dict(given or {})
    key_in = dict(_object(given, "key_props"))
    if isinstance(key, rsa.RSAPrivateKey):
        key_in.update({"kty": key_in.get("kty") or "RSA", "key_size": key.key_size})
    else:
        curve = {c.name: n for n, c in CURVES.items()}.get(key.curve.name)
        if curve is None:
            raise _bad(f"The key's curve {key.curve.name} is not supported.")
        key_in.update({"kty": key_in.get("kty") or "EC", "crv": curve})
    given["key_props"] = key_in
    x509_in: JsonObject = {"subject": cert.subject.rfc4514_string()}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        x509_in["sans"] = {
            k: v
            for k, v in {
                "dns_names": san.get_values_for_type(x509.DNSName),
                "emails": san.get_values_for_type(x509.RFC822Name),
                "uris": san.get_values_for_type(x509.UniformResourceIdentifier),
                "ipAddresses": [str(a) for a in san.get_values_for_type(x509.IPAddress)],
            }.items()
            if v
        }
    except x509.ExtensionNotFound:
        pass
    with contextlib.suppress(x509.ExtensionNotFound):
        x509_in["ekus"] = [
            o.dotted_string for o in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        ]
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    x509_in["validity_months"] = max(1, (end.year - start.year) * 12 + end.month - start.month)
    given["x509_props"] = x509_in
    given["issuer"] = {"name": "Unknown"}
    return _parse_policy(given, None, now)
