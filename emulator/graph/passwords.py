"""An application's password credentials: addPassword (under the tenant's app management policy) and removePassword."""

from __future__ import annotations

import secrets
import string
from datetime import datetime, timedelta

from ..clock import iso, parse_iso
from ..state import JsonObject, World, hash_secret, new_guid
from .authorization import require_manage
from .calls import GUID, GraphCall, GraphResult
from .odata import CONTEXT
from .policy import lifetime_exceeded, parse_duration, restrictions_for
from .validation import is_str

SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


def add_password(world: World, call: GraphCall, app: JsonObject) -> GraphResult:
    require_manage(call, app["id"])
    body = call.json() if call.raw_body else {}
    unknown = set(body) - {"passwordCredential"}
    if unknown:
        raise call.error(
            400,
            "Request_BadRequest",
            f"The property '{sorted(unknown)[0]}' does not exist on the action parameters.",
        )
    requested = body.get("passwordCredential") or {}
    if not isinstance(requested, dict):
        raise call.error(400, "Request_BadRequest", "Invalid value specified for property 'passwordCredential'.")
    now = world.clock.now()
    try:
        start = parse_iso(requested["startDateTime"]) if requested.get("startDateTime") else now
        # Entra's default lifetime for a new secret is two years.
        end = parse_iso(requested["endDateTime"]) if requested.get("endDateTime") else start + timedelta(days=730)
    except (TypeError, ValueError) as exc:
        raise call.error(
            400,
            "Request_BadRequest",
            "Invalid value specified for property 'endDateTime' of resource 'PasswordCredential'.",
        ) from exc
    display_name = requested.get("displayName")
    if display_name is not None and not is_str(display_name, 256):
        raise call.error(
            400,
            "Request_BadRequest",
            "Invalid value specified for property 'displayName' of resource 'PasswordCredential'.",
        )
    if end <= start:
        raise call.error(
            400,
            "Request_BadRequest",
            "The end date must be later than the start date.",
            [{"code": "InvalidKeyEndDate", "message": "Key credential end date is invalid.", "target": "EndDate"}],
        )
    _enforce_password_policy(call, app, start, end)
    key_id = new_guid()
    secret_text = new_secret_text()
    credential = {
        "customKeyIdentifier": None,
        "displayName": display_name,
        "endDateTime": iso(end),
        "hint": secret_text[:3],
        "keyId": key_id,
        "secretText": None,
        "startDateTime": iso(start),
    }
    app.setdefault("passwordCredentials", []).append(credential)
    call.tenant.password_hashes[key_id] = hash_secret(secret_text)
    world.replication.created("password", key_id)
    world.touch()
    response = dict(credential, secretText=secret_text)
    response["@odata.context"] = f"{CONTEXT}#microsoft.graph.passwordCredential"
    return GraphResult(200, response)


def _enforce_password_policy(call: GraphCall, app: JsonObject, start: datetime, end: datetime) -> None:
    policy_id, restrictions = restrictions_for(call.tenant, app, "passwordCredentials")
    for restriction in restrictions:
        kind = restriction.get("restrictionType")
        if kind == "passwordAddition":
            raise call.error(
                400,
                "CredentialTypeNotAllowedAsPerAppPolicy",
                f"Password credential type is not allowed as per assigned policy '{policy_id}'.",
            )
        max_lifetime = restriction.get("maxLifetime")
        if kind == "passwordLifetime" and max_lifetime and end - start > parse_duration(max_lifetime):
            raise lifetime_exceeded(call, policy_id)


def remove_password(world: World, call: GraphCall, app: JsonObject) -> GraphResult:
    require_manage(call, app["id"])
    body = call.json()
    key_id = body.get("keyId")
    if not isinstance(key_id, str) or not GUID.match(key_id):
        raise call.error(400, "Request_BadRequest", "Invalid value specified for property 'keyId'.")
    credentials = app.get("passwordCredentials", [])
    remaining = [c for c in credentials if c["keyId"] != key_id.lower()]
    if len(remaining) == len(credentials):
        # Not confirmed against the live service; a precise 400 is what a client must handle anyway.
        raise call.error(
            400, "Request_BadRequest", f"No password credential with keyId '{key_id}' exists on this application."
        )
    app["passwordCredentials"] = remaining
    call.tenant.password_hashes.pop(key_id.lower(), None)
    world.touch()
    return GraphResult(204)


def new_secret_text() -> str:
    # Entra's secrets are 40 characters with "Q~" after a short prefix; the shape matters only to
    # scanners that look for leaked secrets, so tests can find one in a log.
    prefix = "".join(secrets.choice(SECRET_ALPHABET[:62]) for _ in range(3))
    body = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(34))
    return f"{prefix}8Q~{body}"
