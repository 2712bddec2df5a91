"""Graph's resources as the project's values: an application's JSON or SDK model read into AppRegistration,
the spec written as an Application, Graph's dates and durations parsed."""

from __future__ import annotations

import base64
import binascii
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from msgraph.generated.models.application import Application
from msgraph.generated.models.password_credential import PasswordCredential
from msgraph.generated.models.required_resource_access import RequiredResourceAccess
from msgraph.generated.models.resource_access import ResourceAccess

from shared.domain.errors import UpstreamError
from shared.domain.model import AppRegistration, KeyInfo, PasswordInfo, RoleRef
from shared.domain.ports import ApplicationSpec

# passwordCredential documents startDateTime and endDateTime as optional: a credential without them is
# one whose start is unknown (never young enough to spare) and whose end is unknown (never due).
NO_START = datetime.min.replace(tzinfo=UTC)
NO_END = datetime.max.replace(tzinfo=UTC)


def application_body(spec: ApplicationSpec) -> Application:
    return Application(
        display_name=spec.display_name,
        sign_in_audience=spec.sign_in_audience,
        tags=list(spec.tags),
        notes=spec.notes,
        required_resource_access=[
            RequiredResourceAccess(
                resource_app_id=resource_app_id,
                resource_access=[ResourceAccess(id=role_id, type="Role") for role_id in role_ids],
            )
            for resource_app_id, role_ids in spec.required_roles
        ],
    )


def holding(apps: list[dict[str, Any]], unique_name: str) -> str | None:
    """The object id of the app in `apps` whose uniqueName is `unique_name` (alternate keys ignore case)."""
    wanted = unique_name.lower()
    return next((str(a["id"]) for a in apps if str(a.get("uniqueName") or "").lower() == wanted), None)


def registration(app: Application | dict[str, Any]) -> AppRegistration:
    """From Graph's JSON (reads) or the SDK model (the 201 of an upsert)."""
    if not isinstance(app, dict):
        return AppRegistration(
            object_id=str(app.id),
            app_id=str(app.app_id),
            unique_name=str(app.unique_name or ""),
            display_name=str(app.display_name or ""),
            required_roles=frozenset(
                RoleRef(str(rra.resource_app_id), str(access.id))
                for rra in app.required_resource_access or []
                for access in rra.resource_access or []
                if access.type == "Role"
            ),
            passwords=tuple(password_info(p) for p in app.password_credentials or []),
            tags=tuple(app.tags or ()),
            created=app.created_date_time,
            notes=app.notes,
            sign_in_audience=app.sign_in_audience,
            keys=tuple(
                key_info(
                    {
                        "keyId": k.key_id,
                        "displayName": k.display_name,
                        "customKeyIdentifier": base64.b64encode(k.custom_key_identifier).decode()
                        if k.custom_key_identifier
                        else None,
                        "startDateTime": k.start_date_time.isoformat() if k.start_date_time else None,
                        "endDateTime": k.end_date_time.isoformat() if k.end_date_time else None,
                    }
                )
                for k in app.key_credentials or []
            ),
        )
    return AppRegistration(
        object_id=str(app["id"]),
        app_id=str(app["appId"]),
        unique_name=str(app.get("uniqueName") or ""),
        display_name=str(app.get("displayName") or ""),
        required_roles=frozenset(
            RoleRef(str(rra["resourceAppId"]), str(access["id"]))
            for rra in app.get("requiredResourceAccess") or []
            for access in rra.get("resourceAccess") or []
            if access.get("type") == "Role"
        ),
        passwords=tuple(
            PasswordInfo(
                key_id=str(p["keyId"]),
                display_name=p.get("displayName"),
                hint=p.get("hint"),
                start=parse_datetime(p["startDateTime"]) if p.get("startDateTime") else NO_START,
                end=parse_datetime(p["endDateTime"]) if p.get("endDateTime") else NO_END,
            )
            for p in app.get("passwordCredentials") or []
        ),
        tags=tuple(app.get("tags") or ()),
        created=parse_datetime(str(app["createdDateTime"])) if app.get("createdDateTime") else None,
        notes=app.get("notes"),
        sign_in_audience=app.get("signInAudience"),
        keys=tuple(key_info(k) for k in app.get("keyCredentials") or []),
    )


def key_info(key: dict[str, Any]) -> KeyInfo:
    """A keyCredential as Graph lists it (https://learn.microsoft.com/graph/api/resources/keycredential):
    `customKeyIdentifier` is base64, and for a certificate Graph defaults it to the SHA-1 thumbprint;
    start and end are documented as optional, read as for a password credential."""
    custom = key.get("customKeyIdentifier")
    try:
        thumbprint = base64.b64decode(str(custom), validate=True).hex().upper() if custom else None
    except (ValueError, binascii.Error):
        thumbprint = None  # set by whoever added the key to something that is not a thumbprint
    return KeyInfo(
        key_id=str(key.get("keyId")),
        display_name=key.get("displayName"),
        thumbprint=thumbprint,
        start=parse_datetime(str(key["startDateTime"])) if key.get("startDateTime") else NO_START,
        end=parse_datetime(str(key["endDateTime"])) if key.get("endDateTime") else NO_END,
    )


def duration(text: str) -> timedelta:
    """An ISO 8601 duration as Graph writes policy lifetimes (P90D, P1Y, PT12H); a year counts 365 days."""
    match = re.fullmatch(
        r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?", text
    )
    if match is None:
        raise UpstreamError("Graph returned a policy lifetime that is not an ISO 8601 duration", "graph", 200, None)
    years, months, weeks, days, hours, minutes = (int(g) if g else 0 for g in match.groups()[:6])
    seconds = float(match.group(7) or 0)
    return timedelta(days=years * 365 + months * 30 + weeks * 7 + days, hours=hours, minutes=minutes, seconds=seconds)


def parse_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def password_info(credential: PasswordCredential) -> PasswordInfo:
    return PasswordInfo(
        key_id=str(credential.key_id),
        display_name=credential.display_name,
        hint=credential.hint,
        start=credential.start_date_time or NO_START,
        end=credential.end_date_time or NO_END,
    )
