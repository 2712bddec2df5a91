"""An application's certificate credentials (keyCredentials): PATCH replaces the set, addKey and removeKey roll it.

Graph v1.0 as its pages describe it (emulator/FIDELITY.md, "Certificates on applications"):
- `PATCH /applications/{id}` with `keyCredentials` replaces the whole collection; an entry sent back with
  its `keyId` and without `key` (as every read but a single-object `$select=keyCredentials` returns it)
  keeps that credential; a new entry needs `type` AsymmetricX509Cert, `usage` Verify and the DER
  certificate in `key`, and Graph fills in `keyId`, `customKeyIdentifier` (the SHA-1 thumbprint) and the
  dates from the certificate.
- `addKey` and `removeKey` carry a proof of possession: a JWT signed by one of the application's valid
  certificates, `aud` 00000002-0000-0000-c000-000000000000, `iss` the application's object id, at most ten
  minutes between `nbf` and `exp`. An application without a valid certificate cannot use them.
- The app management policy's `keyCredentials` restrictions (`asymmetricKeyLifetime`) bind new certificates.

The certificate bytes live in Tenant.certificate_keys, so the application's JSON never leaks them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..clock import iso, parse_iso
from ..errors import ServiceError
from ..state import JsonObject, Tenant, World, new_guid
from .authorization import require_manage
from .calls import GUID, GraphCall, GraphResult
from .odata import CONTEXT
from .policy import lifetime_exceeded, parse_duration, restrictions_for

KEY_TYPE = "AsymmetricX509Cert"
KEY_USAGE = "Verify"
KEY_CREDENTIAL_PROPERTIES = {
    "customKeyIdentifier",
    "displayName",
    "endDateTime",
    "key",
    "keyId",
    "startDateTime",
    "type",
    "usage",
}
# application: addKey, the proof's claims (https://learn.microsoft.com/graph/api/application-addkey).
PROOF_AUDIENCE = "00000002-0000-0000-c000-000000000000"
PROOF_MAX_LIFETIME = timedelta(minutes=10)
PROOF_LEEWAY_SECONDS = 60


@dataclass(frozen=True)
class Certificate:
    """One certificate credential of an application, with what a client assertion is checked against."""

    credential: JsonObject
    certificate: x509.Certificate
    sha1: bytes
    sha256: bytes

    @property
    def key_id(self) -> str:
        return str(self.credential["keyId"])

    def valid_at(self, moment: datetime) -> bool:
        return parse_iso(self.credential["startDateTime"]) <= moment < parse_iso(self.credential["endDateTime"])


def certificates_of(tenant: Tenant, app: JsonObject) -> list[Certificate]:
    """The application's certificates (AsymmetricX509Cert, Verify) whose bytes the tenant holds."""
    found = []
    for credential in app.get("keyCredentials") or []:
        encoded = tenant.certificate_keys.get(credential["keyId"])
        if encoded is None or credential.get("type") != KEY_TYPE or credential.get("usage") != KEY_USAGE:
            continue
        der = base64.b64decode(encoded)
        certificate = x509.load_der_x509_certificate(der)
        found.append(Certificate(credential, certificate, hashlib.sha1(der).digest(), hashlib.sha256(der).digest()))  # noqa: S324
    return found


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def find_by_thumbprint(certificates: list[Certificate], header: dict[str, Any]) -> Certificate | None:
    """The certificate a JWT header names: `x5t#S256` (SHA-256) or `x5t` (SHA-1), base64url of the DER.

    With or without base64 padding: MSAL pads its `x5t` (msal 1.39, oauth2cli/assertion.py)."""
    wanted_256, wanted_1 = (
        str(value).rstrip("=") if value is not None else None for value in (header.get("x5t#S256"), header.get("x5t"))
    )
    for certificate in certificates:
        if wanted_256 is not None and wanted_256 == b64url(certificate.sha256):
            return certificate
        if wanted_256 is None and wanted_1 is not None and wanted_1 == b64url(certificate.sha1):
            return certificate
    return None


def verify_signature(token: str, certificate: x509.Certificate, algorithms: list[str]) -> dict[str, Any]:
    """The token's claims if the certificate's public key signed it; time claims are the caller's business."""
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise jwt.InvalidSignatureError("unsupported key type")
    return dict(
        jwt.decode(
            token,
            public_key,
            algorithms=algorithms,
            options={"verify_aud": False, "verify_exp": False, "verify_nbf": False, "verify_iat": False},
        )
    )


# --- PATCH /applications/{id} {"keyCredentials": [...]} (and POST /applications with it) ---


def replace_key_credentials(world: World, call: GraphCall, app: JsonObject, value: Any) -> None:
    """Replace the application's keyCredentials with `value`, all or nothing."""
    if not isinstance(value, list):
        raise _invalid(call, "keyCredentials")
    tenant = call.tenant
    existing = {c["keyId"]: c for c in app.get("keyCredentials") or []}
    kept: list[JsonObject] = []
    added: list[tuple[JsonObject, str]] = []
    seen: set[str] = set()
    for entry in value:
        if not isinstance(entry, dict):
            raise _invalid(call, "keyCredentials")
        entry = {k: v for k, v in entry.items() if not k.startswith("@odata.")}
        unknown = set(entry) - KEY_CREDENTIAL_PROPERTIES
        if unknown:
            raise call.error(
                400,
                "Request_BadRequest",
                f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.keyCredential'.",
            )
        key_id = entry.get("keyId")
        if key_id is not None and (not isinstance(key_id, str) or not GUID.match(key_id)):
            raise _invalid(call, "keyId", "KeyCredential")
        key_id = key_id.lower() if key_id else None
        if key_id in seen:
            raise call.error(400, "Request_BadRequest", f"Duplicate keyId '{key_id}' in keyCredentials.")
        if key_id is not None and key_id in existing:
            kept.append(_kept(call, tenant, existing[key_id], entry))
        else:
            credential, der = new_key_credential(call, app, entry, key_id)
            added.append((credential, der))
            key_id = credential["keyId"]
        seen.add(str(key_id))
    removed = set(existing) - seen
    app["keyCredentials"] = kept + [credential for credential, _ in added]
    for key_id in removed:
        tenant.certificate_keys.pop(key_id, None)
    for credential, der in added:
        tenant.certificate_keys[credential["keyId"]] = der
        world.replication.created("keyCredential", credential["keyId"])
    world.touch()


def _kept(call: GraphCall, tenant: Tenant, stored: JsonObject, sent: JsonObject) -> JsonObject:
    """An existing credential sent back: kept as stored, when nothing sent contradicts it.

    Clients send back what they read (Terraform's azuread_application_certificate; a list read has
    `key: null`). A changed credential under an existing keyId is refused: "Update to existing credential
    with KeyId '…' is not allowed." (Azure AD Graph, recorded in
    Azure/active-directory-dotnet-graphapi-b2bportal-web issue 8, detail KeyNotUpdatable)."""
    key_id = stored["keyId"]
    changed = False
    if sent.get("key") is not None and _decoded(sent["key"]) != _decoded(tenant.certificate_keys.get(key_id, "")):
        changed = True
    for name in ("type", "usage", "displayName"):
        if sent.get(name) is not None and sent[name] != stored.get(name):
            changed = True
    custom = sent.get("customKeyIdentifier")
    if custom is not None and _decoded(custom) != _decoded(stored.get("customKeyIdentifier") or ""):
        changed = True
    for name in ("startDateTime", "endDateTime"):
        if sent.get(name) is not None and _same_moment(sent[name], stored.get(name)) is False:
            changed = True
    if changed:
        raise call.error(
            400,
            "Request_BadRequest",
            f"Update to existing credential with KeyId '{key_id}' is not allowed.",
            [
                {
                    "code": "KeyNotUpdatable",
                    "message": "Existing key credentials cannot be changed.",
                    "target": "keyCredentials",
                }
            ],
        )
    return stored


def new_key_credential(
    call: GraphCall, app: JsonObject, entry: JsonObject, key_id: str | None
) -> tuple[JsonObject, str]:
    """A new keyCredential from a request entry, as Graph completes it, and the base64 DER it holds."""
    credential_type, usage = entry.get("type"), entry.get("usage")
    if usage not in ("Sign", "Verify"):
        # Recorded text: microsoftgraph/msgraph-sdk-java issue 1823.
        raise call.error(
            400,
            "Request_BadRequest",
            'The value for the property "usage" in one of your credentials is invalid. Acceptable values are Sign, Verify.',
        )
    if credential_type != KEY_TYPE or usage != KEY_USAGE:
        # addKey: "AsymmetricX509Cert: The usage must be Verify"; X509CertAndPassword/Sign (SAML signing) is
        # not modelled by the stand-in.
        raise call.error(
            400,
            "Request_BadRequest",
            f"Key credential type '{credential_type}' with usage '{usage}' is not supported; "
            f"use type '{KEY_TYPE}' with usage '{KEY_USAGE}'.",
        )
    raw = entry.get("key")
    if not raw:
        # Recorded code and text: ansible-collections/azure pull request 2127 (issue 1872).
        raise call.error(400, "KeyCredentialsInvalidValue", "KeyValue cannot be null or empty.")
    try:
        der = _decode_b64(raw)
        certificate = x509.load_der_x509_certificate(der)
    except (ValueError, TypeError) as exc:
        raise call.error(400, "KeyCredentialsInvalidValue", "Key credential value is not a valid certificate.") from exc
    not_before = certificate.not_valid_before_utc
    not_after = certificate.not_valid_after_utc
    try:
        start = parse_iso(entry["startDateTime"]) if entry.get("startDateTime") else not_before
        end = parse_iso(entry["endDateTime"]) if entry.get("endDateTime") else not_after
    except (TypeError, ValueError) as exc:
        raise _invalid(call, "endDateTime", "KeyCredential") from exc
    if end <= start or end > not_after + timedelta(seconds=1) or start < not_before - timedelta(seconds=1):
        # "Key credential end date is invalid" for dates beyond the certificate's (azure-cli issue 11146,
        # Azure/azure-powershell issue 6974); the detail as Graph gives it for passwords.
        raise call.error(
            400,
            "Request_BadRequest",
            "Key credential end date is invalid.",
            [{"code": "InvalidKeyEndDate", "message": "Key credential end date is invalid.", "target": "EndDate"}],
        )
    _enforce_key_policy(call, app, start, end)
    display_name = entry.get("displayName")
    if display_name is None:
        display_name = certificate.subject.rfc4514_string()
    elif not isinstance(display_name, str):
        raise _invalid(call, "displayName", "KeyCredential")
    custom = entry.get("customKeyIdentifier")
    try:
        custom_bytes = _decode_b64(custom) if custom else hashlib.sha1(der).digest()  # noqa: S324  the thumbprint
    except (ValueError, TypeError) as exc:
        raise _invalid(call, "customKeyIdentifier", "KeyCredential") from exc
    credential = {
        "customKeyIdentifier": base64.b64encode(custom_bytes).decode(),
        "displayName": display_name[:90],  # "maximum length of 90 characters. Longer values are accepted but shortened"
        "endDateTime": iso(end),
        "key": None,
        "keyId": key_id or new_guid(),
        "startDateTime": iso(start),
        "type": KEY_TYPE,
        "usage": KEY_USAGE,
    }
    return credential, base64.b64encode(der).decode()


def _enforce_key_policy(call: GraphCall, app: JsonObject, start: datetime, end: datetime) -> None:
    """keyCredentialConfiguration: `asymmetricKeyLifetime` caps a certificate credential's lifetime
    (https://learn.microsoft.com/graph/api/resources/keycredentialconfiguration)."""
    policy_id, restrictions = restrictions_for(call.tenant, app, "keyCredentials")
    for restriction in restrictions:
        max_lifetime = restriction.get("maxLifetime")
        if (
            restriction.get("restrictionType") == "asymmetricKeyLifetime"
            and max_lifetime
            and end - start > parse_duration(max_lifetime)
        ):
            raise lifetime_exceeded(call, policy_id)


def with_keys(tenant: Tenant, body: JsonObject, query: dict[str, str]) -> JsonObject:
    """A single application read: `key` is filled in only when `$select` names keyCredentials
    ("Returned only on $select for a single object … otherwise, it is always null",
    https://learn.microsoft.com/graph/api/resources/keycredential)."""
    selected = {p.strip() for p in (query.get("$select") or "").split(",")}
    if "keyCredentials" not in selected or "keyCredentials" not in body:
        return body
    filled = [dict(c, key=tenant.certificate_keys.get(c["keyId"])) for c in body["keyCredentials"]]
    return dict(body, keyCredentials=filled)


# --- POST /applications/{id}/addKey and /removeKey ---


def add_key(world: World, call: GraphCall, app: JsonObject) -> GraphResult:
    _authorize_roll(call, app)
    body = _action_body(call, {"keyCredential", "passwordCredential", "proof"})
    _check_proof(world, call, app, body.get("proof"))
    requested = body.get("keyCredential")
    if not isinstance(requested, dict):
        raise _invalid(call, "keyCredential", "AddKey")
    if body.get("passwordCredential") is not None:
        # "This property is required only for keys of type X509CertAndPassword. Set it to null otherwise."
        raise _invalid(call, "passwordCredential", "AddKey")
    unknown = {k for k in requested if not k.startswith("@odata.")} - KEY_CREDENTIAL_PROPERTIES
    if unknown:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.keyCredential'.",
        )
    key_id = requested.get("keyId")
    if key_id is not None and (not isinstance(key_id, str) or not GUID.match(key_id)):
        raise _invalid(call, "keyId", "KeyCredential")
    if key_id and key_id.lower() in {c["keyId"] for c in app.get("keyCredentials") or []}:
        raise call.error(400, "Request_BadRequest", f"A key credential with keyId '{key_id}' already exists.")
    credential, der = new_key_credential(call, app, requested, key_id.lower() if key_id else None)
    app.setdefault("keyCredentials", []).append(credential)
    call.tenant.certificate_keys[credential["keyId"]] = der
    world.replication.created("keyCredential", credential["keyId"])
    world.touch()
    return GraphResult(200, dict(credential, **{"@odata.context": f"{CONTEXT}#microsoft.graph.keyCredential"}))


def remove_key(world: World, call: GraphCall, app: JsonObject) -> GraphResult:
    _authorize_roll(call, app)
    body = _action_body(call, {"keyId", "proof"})
    _check_proof(world, call, app, body.get("proof"))
    key_id = body.get("keyId")
    if not isinstance(key_id, str) or not GUID.match(key_id):
        raise _invalid(call, "keyId", "RemoveKey")
    credentials = app.get("keyCredentials") or []
    remaining = [c for c in credentials if c["keyId"] != key_id.lower()]
    if len(remaining) == len(credentials):
        # Not confirmed against the live service (as for removePassword, G26).
        raise call.error(
            400, "Request_BadRequest", f"No key credential with keyId '{key_id}' exists on this application."
        )
    app["keyCredentials"] = remaining
    call.tenant.certificate_keys.pop(key_id.lower(), None)
    world.touch()
    return GraphResult(204)


def _authorize_roll(call: GraphCall, app: JsonObject) -> None:
    """addKey/removeKey: Application.ReadWrite.OwnedBy (an owner) or Application.ReadWrite.All, and "An
    application does not need any specific permission to roll its own keys" (application-addkey page)."""
    if call.caller.app_id and call.caller.app_id == app["appId"]:
        return
    require_manage(call, app["id"])


def _action_body(call: GraphCall, allowed: set[str]) -> JsonObject:
    body = call.json()
    unknown = set(body) - allowed
    if unknown:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The property '{sorted(unknown)[0]}' does not exist on the action parameters.",
        )
    return body


def _check_proof(world: World, call: GraphCall, app: JsonObject, proof: Any) -> None:
    """The proof of possession: signed by one of the app's valid certificates, for Graph, by this app.

    Which status and code Graph gives a missing or bad proof is not documented: the stand-in answers
    400 Request_BadRequest naming the reason (emulator/FIDELITY.md, unknown)."""
    now = world.clock.now()
    valid = [c for c in certificates_of(call.tenant, app) if c.valid_at(now) and world.replication.visible(c.key_id)]
    if not valid:
        # "Applications that don't have any existing valid certificates (no certificates have been added
        # yet, or all certificates have expired), won't be able to use this service action."
        raise call.error(
            400,
            "Request_BadRequest",
            "The application has no valid certificate to prove possession with; use Update application instead.",
        )
    if not isinstance(proof, str) or not proof:
        raise call.error(400, "Request_BadRequest", "Property 'proof' is required.")
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError as exc:
        raise call.error(400, "Request_BadRequest", "The proof is not a valid JWT.") from exc
    candidates = [c] if (c := find_by_thumbprint(valid, header)) else valid
    claims = None
    for certificate in candidates:
        try:
            claims = verify_signature(proof, certificate.certificate, ["RS256", "PS256"])
            break
        except jwt.PyJWTError:
            continue
    if claims is None:
        raise call.error(
            400, "Request_BadRequest", "The proof is not signed by a valid certificate of the application."
        )
    if claims.get("aud") != PROOF_AUDIENCE or claims.get("iss") != app["id"]:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The proof must have aud '{PROOF_AUDIENCE}' and iss the application's object id.",
        )
    nbf, exp = claims.get("nbf"), claims.get("exp")
    if not isinstance(nbf, int | float) or not isinstance(exp, int | float):
        raise call.error(400, "Request_BadRequest", "The proof must carry nbf and exp.")
    moment = time.time()  # the client dates its JWT by the real clock (emulator/clock.py)
    if (
        exp - nbf > PROOF_MAX_LIFETIME.total_seconds()
        or not nbf - PROOF_LEEWAY_SECONDS <= moment < exp + PROOF_LEEWAY_SECONDS
    ):
        raise call.error(
            400, "Request_BadRequest", "The proof is expired, not yet valid, or lives longer than ten minutes."
        )


def _decode_b64(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("not base64")
    text = value.strip()
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
    except (binascii.Error, ValueError):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _decoded(value: Any) -> bytes | None:
    try:
        return _decode_b64(value)
    except (ValueError, TypeError):
        return None


def _same_moment(a: Any, b: Any) -> bool | None:
    try:
        return parse_iso(str(a)) == parse_iso(str(b))
    except (TypeError, ValueError):
        return None


def _invalid(call: GraphCall, prop: str, resource: str = "Application") -> ServiceError:
    return call.error(
        400, "Request_BadRequest", f"Invalid value specified for property '{prop}' of resource '{resource}'."
    )
