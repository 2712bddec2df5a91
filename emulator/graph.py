"""Microsoft Graph v1.0, the subset this product calls: applications, service principals, consent.

Requests are dispatched on OData paths (including key syntax such as
`applications(uniqueName='x')`) by one resolver, so `$batch` sub-requests take exactly the
same path as direct ones. Authorization follows the caller's app roles the way Graph does:
`Application.ReadWrite.OwnedBy` may create applications (and becomes their owner) but may
change only what it owns; granting app roles needs `AppRoleAssignment.ReadWrite.All` together
with a permission that reads applications. emulator/FIDELITY.md gives the source of each rule.
Reads and dependent writes honour replication lag (state.Replication); alternate-key upserts
see the write replica, which is what makes them the safe way to create idempotently.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .clock import iso, parse_iso
from .errors import ServiceError, graph_error, injected_error
from .faults import FaultInjector
from .state import JsonObject, Tenant, World, hash_secret, new_guid
from .tokens import Caller, TokenError, TokenService

GRAPH_AUDIENCES = {
    "https://graph.microsoft.com",
    "https://graph.microsoft.com/",
    "00000003-0000-0000-c000-000000000000",
}
CONTEXT = "https://graph.microsoft.com/v1.0/$metadata"
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
KEYED = re.compile(r"^(?P<set>applications|servicePrincipals)\((?P<key>appId|uniqueName)='(?P<value>[^']*)'\)$")
MAX_BATCH = 20
DEFAULT_PAGE = 100
MAX_PAGE = 999

READ_APPS = {
    "Application.Read.All",
    "Application.ReadWrite.All",
    "Application.ReadWrite.OwnedBy",
    "Directory.Read.All",
    "Directory.ReadWrite.All",
}
WRITE_ALL_APPS = {"Application.ReadWrite.All", "Directory.ReadWrite.All"}
OWNED_APPS = "Application.ReadWrite.OwnedBy"
GRANT_ROLES = {"AppRoleAssignment.ReadWrite.All"}
# Granting also needs to read the principal and the resource: Graph's permission table for
# POST /servicePrincipals/{id}/appRoleAssignedTo lists "AppRoleAssignment.ReadWrite.All and
# Application.Read.All" (higher: "... and Directory.Read.All"); Application.ReadWrite.OwnedBy is not
# listed, and microsoft-graph-docs-contrib issue 3476 reports a 403 without the read permission.
# https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto
GRANT_READS = {"Application.Read.All", "Application.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
# What Graph answers while a just-created principal is not visible to the write path yet, besides 404:
# terraform-provider-azuread's app role assignment resource retries on this message, and
# microsoft-graph-docs-contrib issue 1407 reports it right after creating a service principal.
NOT_A_VALID_REFERENCE = "Not a valid reference update."
READ_POLICY = {"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"}
WRITE_POLICY = {"Policy.ReadWrite.ApplicationConfiguration"}
READ_ORG = {"Organization.Read.All", "Organization.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}

SIGN_IN_AUDIENCES = {
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
}
SECRET_ALPHABET = string.ascii_letters + string.digits + "_-.~"


@dataclass
class GraphResult:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class GraphCall:
    """One Graph request, direct or inside $batch."""

    method: str
    segments: list[str]
    query: dict[str, str]
    headers: dict[str, str]
    raw_body: bytes | None
    caller: Caller
    tenant: Tenant
    request: Request | None = None

    def json(self) -> JsonObject:
        if not self.raw_body:
            raise graph_error(self.request, 400, "BadRequest", "Empty Payload. JSON content expected.")
        try:
            body = json.loads(self.raw_body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise graph_error(
                self.request,
                400,
                "BadRequest",
                "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of "
                "valid JSON format.",
            ) from exc
        if not isinstance(body, dict):
            raise graph_error(self.request, 400, "BadRequest", "The request payload must be a JSON object.")
        return body

    def error(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None) -> ServiceError:
        return graph_error(self.request, status, code, message, details)


# --- property validation (allow-list per entity type) ---


def _is_str(value: Any, max_len: int = 1024) -> bool:
    return isinstance(value, str) and len(value) <= max_len


def _is_str_list(value: Any, max_len: int = 256) -> bool:
    return isinstance(value, list) and all(_is_str(v, max_len) for v in value)


def _valid_tags(value: Any) -> bool:
    # Tags: 1-256 characters, no whitespace, no duplicates (azure-facts.md, application limits).
    return (
        isinstance(value, list)
        and all(isinstance(t, str) and 1 <= len(t) <= 256 and not any(c.isspace() for c in t) for t in value)
        and len({t.lower() for t in value}) == len(value)
    )


def _valid_required_resource_access(value: Any) -> bool:
    if not isinstance(value, list) or len(value) > 50:
        return False
    total = 0
    for entry in value:
        if not isinstance(entry, dict) or set(entry) - {"resourceAppId", "resourceAccess", "@odata.type"}:
            return False
        if not isinstance(entry.get("resourceAppId"), str):
            return False
        access = entry.get("resourceAccess", [])
        if not isinstance(access, list):
            return False
        for item in access:
            if not isinstance(item, dict) or set(item) - {"id", "type", "@odata.type"}:
                return False
            if (
                not isinstance(item.get("id"), str)
                or not GUID.match(item["id"])
                or item.get("type") not in ("Role", "Scope")
            ):
                return False
        total += len(access)
    return total <= 400


def _is_obj(value: Any) -> bool:
    return isinstance(value, dict)


def _is_bool(value: Any) -> bool:
    return isinstance(value, bool)


APPLICATION_PROPERTIES: dict[str, Any] = {
    "displayName": lambda v: _is_str(v, 120) and bool(v.strip()),
    "description": lambda v: v is None or _is_str(v, 1024),
    "notes": lambda v: v is None or _is_str(v, 1024),
    "tags": _valid_tags,
    "signInAudience": lambda v: v in SIGN_IN_AUDIENCES,
    "requiredResourceAccess": _valid_required_resource_access,
    "uniqueName": lambda v: _is_str(v, 256) and bool(v),
    "identifierUris": _is_str_list,
    "web": _is_obj,
    "spa": _is_obj,
    "publicClient": _is_obj,
    "api": _is_obj,
    "info": _is_obj,
    "optionalClaims": lambda v: v is None or _is_obj(v),
    "appRoles": lambda v: isinstance(v, list),
    "isFallbackPublicClient": lambda v: v is None or _is_bool(v),
    "serviceManagementReference": lambda v: v is None or _is_str(v, 128),
    "groupMembershipClaims": lambda v: v is None or _is_str(v, 64),
}
READ_ONLY_APPLICATION = {
    "id",
    "appId",
    "createdDateTime",
    "publisherDomain",
    "deletedDateTime",
    "passwordCredentials",
    "keyCredentials",
}

SERVICE_PRINCIPAL_PROPERTIES: dict[str, Any] = {
    "appId": lambda v: isinstance(v, str) and bool(GUID.match(v)),
    "accountEnabled": _is_bool,
    "tags": _valid_tags,
    "notes": lambda v: v is None or _is_str(v, 1024),
    "description": lambda v: v is None or _is_str(v, 1024),
    "appRoleAssignmentRequired": _is_bool,
    "displayName": lambda v: _is_str(v, 256),
    "servicePrincipalNames": _is_str_list,
}


class GraphService:
    def __init__(self, world: World, tokens: TokenService, faults: FaultInjector) -> None:
        self.world = world
        self.tokens = tokens
        self.faults = faults

    def routes(self) -> list[Route]:
        methods = ["GET", "POST", "PATCH", "DELETE", "PUT"]
        return [Route("/v1.0/{rest:path}", self.endpoint, methods=methods)]

    # --- transport ---
    async def endpoint(self, request: Request) -> Response:
        caller, tenant = self._authenticate(request)
        body = await request.body()
        call = GraphCall(
            method=request.method,
            segments=_split(request.path_params["rest"]),
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            raw_body=body or None,
            caller=caller,
            tenant=tenant,
            request=request,
        )
        result = self.dispatch(call)
        headers = dict(result.headers)
        request_id = str(uuid.uuid4())
        headers.setdefault("request-id", request_id)
        headers.setdefault("client-request-id", request.headers.get("client-request-id", request_id))
        if result.body is None:
            return Response(status_code=result.status, headers=headers)
        return JSONResponse(result.body, status_code=result.status, headers=headers)

    def _authenticate(self, request: Request) -> tuple[Caller, Tenant]:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        if not token:
            raise graph_error(request, 401, "InvalidAuthenticationToken", "Access token is empty.")
        try:
            caller = self.tokens.verify(token, GRAPH_AUDIENCES)
        except TokenError as exc:
            message = {
                "expired": "Access token has expired or is not yet valid.",
                "audience": "Access token validation failure. Invalid audience.",
            }.get(exc.kind, "Access token validation failure.")
            raise graph_error(request, 401, "InvalidAuthenticationToken", message) from exc
        tenant = self.world.tenants.get(caller.tenant_id)
        if tenant is None:
            raise graph_error(
                request, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid issuer."
            )
        return caller, tenant

    def dispatch(self, call: GraphCall) -> GraphResult:
        try:
            return self._route(call)
        except ServiceError as error:
            response = error.response
            return GraphResult(response.status_code, json.loads(bytes(response.body)), dict(response.headers))

    # --- routing ---
    def _route(self, call: GraphCall) -> GraphResult:
        s, m = call.segments, call.method
        if not s:
            raise call.error(400, "BadRequest", "Resource not found for the segment ''.")
        head = s[0]
        if head == "$batch" and len(s) == 1 and m == "POST":
            return self._batch(call)
        if head == "organization" and len(s) == 1 and m == "GET":
            return self._organization(call)
        if s[:2] == ["policies", "defaultAppManagementPolicy"] and len(s) == 2:
            return self._app_policy(call)
        if s[:2] == ["directory", "deletedItems"]:
            return self._deleted_items(call, s[2:])
        keyed = KEYED.match(head)
        if keyed:
            entity_set, key, value = keyed.group("set"), keyed.group("key"), keyed.group("value")
            if entity_set == "applications":
                return self._application_keyed(call, key, value, s[1:])
            if key != "appId":
                raise call.error(400, "BadRequest", f"Resource not found for the segment '{head}'.")
            return self._service_principal_keyed(call, value, s[1:])
        if head == "applications":
            if len(s) == 1:
                if m == "GET":
                    return self._list(
                        call, "applications", self._visible(call.tenant.applications), "microsoft.graph.application"
                    )
                if m == "POST":
                    return self._create_application(call)
                raise _method_not_allowed(call)
            app = self._visible_by_id(call, call.tenant.applications, s[1])
            return self._application_member(call, app, s[2:])
        if head == "servicePrincipals":
            if len(s) == 1:
                if m == "GET":
                    return self._list(
                        call,
                        "servicePrincipals",
                        self._visible(call.tenant.service_principals),
                        "microsoft.graph.servicePrincipal",
                    )
                if m == "POST":
                    return self._create_service_principal(call, call.json())
                raise _method_not_allowed(call)
            sp = self._visible_by_id(call, call.tenant.service_principals, s[1])
            return self._service_principal_member(call, sp, s[2:])
        raise call.error(400, "BadRequest", f"Resource not found for the segment '{head}'.")

    # --- authorization ---
    @staticmethod
    def _require(call: GraphCall, roles: set[str]) -> None:
        if not call.caller.roles & roles:
            raise _denied(call)

    def _require_manage(self, call: GraphCall, owned_object_id: str) -> None:
        roles = call.caller.roles
        if roles & WRITE_ALL_APPS:
            return
        if OWNED_APPS in roles and call.caller.object_id in call.tenant.owners.get(owned_object_id, []):
            return
        raise _denied(call)

    # --- lookups honouring replication ---
    def _visible(self, table: dict[str, JsonObject]) -> list[JsonObject]:
        return [o for oid, o in table.items() if self.world.replication.visible(oid)]

    def _visible_by_id(self, call: GraphCall, table: dict[str, JsonObject], object_id: str) -> JsonObject:
        if not GUID.match(object_id):
            raise call.error(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")
        found = table.get(object_id.lower())
        if found is None or not self.world.replication.visible(found["id"]):
            raise _not_found(call, object_id)
        return found

    # --- applications ---
    def _application_keyed(self, call: GraphCall, key: str, value: str, rest: list[str]) -> GraphResult:
        tenant = call.tenant
        found = tenant.application_by_unique_name(value) if key == "uniqueName" else tenant.application_by_app_id(value)
        if not rest and call.method == "PATCH":
            prefer = call.headers.get("prefer", "")
            if found is None:
                if "create-if-missing" not in prefer.lower():
                    raise _not_found(call, value)
                if key == "uniqueName":
                    self._refuse_name_held_by_deleted(call, value)
                body = call.json()
                if key == "appId":
                    raise call.error(400, "Request_BadRequest", "The property 'appId' cannot be used as an upsert key.")
                if "uniqueName" in body and body["uniqueName"] != value:
                    raise call.error(400, "Request_BadRequest", "The uniqueName in the body does not match the key.")
                body["uniqueName"] = value
                created = self._new_application(call, body)
                location = f"https://graph.microsoft.com/v2/{tenant.id}/directoryObjects/{created['id']}/Microsoft.DirectoryServices.Application"
                return GraphResult(201, _entity(created, "applications"), {"Location": location})
            # An upsert that finds the object updates it; the write replica knows it exists.
            self._update_application(call, found, call.json())
            return GraphResult(204)
        if found is None or not self.world.replication.visible(found["id"]):
            raise _not_found(call, value)
        return self._application_member(call, found, rest)

    def _application_member(self, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
        m = call.method
        if not rest:
            if m == "GET":
                self._require(call, READ_APPS)
                return GraphResult(200, _select(_entity(app, "applications"), call.query))
            if m == "PATCH":
                self._update_application(call, app, call.json())
                return GraphResult(204)
            if m == "DELETE":
                self._delete_application(call, app)
                return GraphResult(204)
            raise _method_not_allowed(call)
        action = rest[0]
        if action == "addPassword" and m == "POST" and len(rest) == 1:
            return self._add_password(call, app)
        if action == "removePassword" and m == "POST" and len(rest) == 1:
            return self._remove_password(call, app)
        if action == "owners":
            return self._owners(call, app, rest[1:])
        if action == "federatedIdentityCredentials":
            return self._federated_credentials(call, app, rest[1:])
        raise call.error(400, "BadRequest", f"Resource not found for the segment '{action}'.")

    def _validate(
        self, call: GraphCall, body: JsonObject, allowed: dict[str, Any], type_name: str, read_only: set[str]
    ) -> JsonObject:
        clean: JsonObject = {}
        for key, value in body.items():
            if key.startswith("@odata."):
                continue
            if key in read_only:
                raise call.error(400, "Request_BadRequest", f"Property '{key}' is read-only and cannot be set.")
            check = allowed.get(key)
            if check is None:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"The property '{key}' does not exist on type 'microsoft.graph.{type_name}'. Make sure to only "
                    "use property names that are defined by the type or mark the type as open type.",
                )
            if not check(value):
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{key}' of resource '{type_name[0].upper()}{type_name[1:]}'.",
                )
            clean[key] = value
        return clean

    def _create_application(self, call: GraphCall) -> GraphResult:
        created = self._new_application(call, call.json())
        return GraphResult(201, _entity(created, "applications"))

    def _new_application(self, call: GraphCall, body: JsonObject) -> JsonObject:
        if not call.caller.roles & (WRITE_ALL_APPS | {OWNED_APPS}):
            raise _denied(call)
        props = self._validate(call, body, APPLICATION_PROPERTIES, "application", READ_ONLY_APPLICATION)
        if "displayName" not in props:
            raise call.error(400, "Request_BadRequest", "Property 'displayName' is required.")
        tenant = call.tenant
        if "uniqueName" in props and tenant.application_by_unique_name(props["uniqueName"]) is not None:
            raise call.error(
                400,
                "Request_BadRequest",
                "Another object with the same value for property uniqueName already exists.",
            )
        if "uniqueName" in props:
            self._refuse_name_held_by_deleted(call, props["uniqueName"])
        object_id, app_id = new_guid(), new_guid()
        app = application_resource(tenant, object_id, app_id, iso(self.world.clock.now()), props["displayName"])
        app.update(props)
        tenant.add_application(app)
        # The creator becomes an owner (azure-facts.md: "Creating an application makes the caller an owner").
        tenant.owners[object_id] = [call.caller.object_id]
        self.world.replication.created("application", object_id)
        self.world.touch()
        return app

    def _refuse_name_held_by_deleted(self, call: GraphCall, unique_name: str) -> None:
        """A soft-deleted application keeps its uniqueName for its 30 days in deleted items.

        Which answer Entra gives then is unknown (no Microsoft page shows it; clients report the name
        stays reserved). The stand-in answers as it does for a live app holding the name; the product
        does not rely on the status or code, it looks the name up in deleted items (emulator/FIDELITY.md).
        """
        wanted = unique_name.lower()
        if any((a.get("uniqueName") or "").lower() == wanted for a in call.tenant.deleted_applications.values()):
            raise call.error(
                400,
                "Request_BadRequest",
                "Another object with the same value for property uniqueName already exists.",
            )

    def _update_application(self, call: GraphCall, app: JsonObject, body: JsonObject) -> None:
        self._require_manage(call, app["id"])
        props = self._validate(call, body, APPLICATION_PROPERTIES, "application", READ_ONLY_APPLICATION)
        if "uniqueName" in props and app.get("uniqueName") not in (None, props["uniqueName"]):
            raise call.error(400, "Request_BadRequest", "Property 'uniqueName' is immutable once set.")
        if "uniqueName" in props and app.get("uniqueName") is None:
            other = call.tenant.application_by_unique_name(props["uniqueName"])
            if other is not None and other["id"] != app["id"]:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    "Another object with the same value for property uniqueName already exists.",
                )
        app.update(props)
        call.tenant.reindex_application(app)
        self.world.touch()

    def _delete_application(self, call: GraphCall, app: JsonObject) -> None:
        self._require_manage(call, app["id"])
        tenant = call.tenant
        tenant.remove_application(app["id"])
        app["deletedDateTime"] = iso(self.world.clock.now())
        tenant.deleted_applications[app["id"]] = app
        # Deleting an application also deletes its service principal in the home tenant.
        home_sp = tenant.service_principal_by_app_id(app["appId"])
        if home_sp is not None:
            self._remove_service_principal(tenant, home_sp)
        self.world.touch()

    def _remove_service_principal(self, tenant: Tenant, sp: JsonObject) -> None:
        tenant.remove_service_principal(sp["id"])
        tenant.owners.pop(sp["id"], None)
        for aid in [aid for aid, a in tenant.assignments.items() if sp["id"] in (a["principalId"], a["resourceId"])]:
            tenant.remove_assignment(aid)

    # --- password credentials ---
    def _add_password(self, call: GraphCall, app: JsonObject) -> GraphResult:
        self._require_manage(call, app["id"])
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
        now = self.world.clock.now()
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
        if display_name is not None and not _is_str(display_name, 256):
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
        self._enforce_password_policy(call, app, start, end)
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
        self.world.replication.created("password", key_id)
        self.world.touch()
        response = dict(credential, secretText=secret_text)
        response["@odata.context"] = f"{CONTEXT}#microsoft.graph.passwordCredential"
        return GraphResult(200, response)

    def _enforce_password_policy(self, call: GraphCall, app: JsonObject, start: datetime, end: datetime) -> None:
        policy = call.tenant.app_management_policy
        if not policy.get("isEnabled"):
            return
        created = parse_iso(app["createdDateTime"])
        restrictions = (policy.get("applicationRestrictions") or {}).get("passwordCredentials") or []
        for restriction in restrictions:
            # passwordCredentialConfiguration: a restriction whose `state` is disabled is not evaluated, and one
            # with restrictForAppsCreatedAfterDateTime is enforced on apps created on or after that date
            # (https://learn.microsoft.com/graph/api/resources/passwordcredentialconfiguration). `excludeActors`
            # (custom security attributes) is not modelled: the stand-in enforces the restriction anyway.
            if str(restriction.get("state") or "enabled").lower() == "disabled":
                continue
            applies_after = restriction.get("restrictForAppsCreatedAfterDateTime")
            if applies_after and created < parse_iso(applies_after):
                continue
            kind = restriction.get("restrictionType")
            if kind == "passwordAddition":
                raise call.error(
                    400,
                    "CredentialTypeNotAllowedAsPerAppPolicy",
                    f"Password credential type is not allowed as per assigned policy '{policy['id']}'.",
                )
            max_lifetime = restriction.get("maxLifetime")
            if kind == "passwordLifetime" and max_lifetime and end - start > _parse_duration(max_lifetime):
                message = f"Credential lifetime exceeds the max value allowed as per assigned policy '{policy['id']}'."
                details = [{"code": "InvalidKeyEndDate", "message": message, "target": "EndDate"}]
                raise call.error(400, "CredentialInvalidLifetimeAsPerAppPolicy", message, details)

    def _remove_password(self, call: GraphCall, app: JsonObject) -> GraphResult:
        self._require_manage(call, app["id"])
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
        self.world.touch()
        return GraphResult(204)

    # --- owners ---
    def _owners(self, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
        tenant = call.tenant
        if not rest and call.method == "GET":
            self._require(call, READ_APPS)
            owners = [
                _directory_object(tenant.find_object(oid) or {"id": oid}) for oid in tenant.owners.get(app["id"], [])
            ]
            return GraphResult(200, {"@odata.context": f"{CONTEXT}#directoryObjects", "value": owners})
        if rest == ["$ref"] and call.method == "POST":
            self._require_manage(call, app["id"])
            ref = call.json().get("@odata.id", "")
            owner_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
            if not GUID.match(owner_id) or tenant.service_principals.get(owner_id) is None:
                raise _not_found(call, owner_id)
            owner_ids = tenant.owners.setdefault(app["id"], [])
            if owner_id in owner_ids:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    "One or more added object references already exist for the following modified properties: 'owners'.",
                )
            owner_ids.append(owner_id)
            self.world.touch()
            return GraphResult(204)
        raise _method_not_allowed(call)

    # --- federated identity credentials ---
    def _federated_credentials(self, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
        store = call.tenant.federated_credentials.setdefault(app["id"], {})
        context = f"{CONTEXT}#applications('{app['id']}')/federatedIdentityCredentials"
        if not rest:
            if call.method == "GET":
                self._require(call, READ_APPS)
                return GraphResult(200, {"@odata.context": context, "value": list(store.values())})
            if call.method == "POST":
                self._require_manage(call, app["id"])
                credential = self._new_federated_credential(call, store)
                return GraphResult(201, dict(credential, **{"@odata.context": f"{context}/$entity"}))
            raise _method_not_allowed(call)
        ref = rest[0]
        found = store.get(ref) or next((c for c in store.values() if c["name"] == ref), None)
        if found is None:
            raise _not_found(call, ref)
        if call.method == "GET":
            self._require(call, READ_APPS)
            return GraphResult(200, dict(found, **{"@odata.context": f"{context}/$entity"}))
        if call.method == "DELETE":
            self._require_manage(call, app["id"])
            del store[found["id"]]
            self.world.touch()
            return GraphResult(204)
        raise _method_not_allowed(call)

    def _new_federated_credential(self, call: GraphCall, store: dict[str, JsonObject]) -> JsonObject:
        body = {k: v for k, v in call.json().items() if not k.startswith("@odata.")}
        allowed = {"name", "issuer", "subject", "audiences", "description"}
        unknown = set(body) - allowed
        if unknown:
            raise call.error(
                400,
                "Request_BadRequest",
                f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.federatedIdentityCredential'.",
            )
        name = body.get("name")
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{0,119}", name):
            raise call.error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'name' of resource 'FederatedIdentityCredential'.",
            )
        for prop in ("issuer", "subject"):
            if not _is_str(body.get(prop), 600) or not body[prop]:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{prop}' of resource 'FederatedIdentityCredential'.",
                )
        audiences = body.get("audiences")
        if not _is_str_list(audiences, 600) or len(audiences or []) != 1:
            raise call.error(
                400,
                "Request_BadRequest",
                "Invalid value specified for property 'audiences' of resource 'FederatedIdentityCredential'.",
            )
        if any(c["name"] == name for c in store.values()):
            raise call.error(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "FederatedIdentityCredential with name " + name + " already exists.",
            )
        if len(store) >= 20:
            raise call.error(
                400, "Request_BadRequest", "An application can have at most 20 federated identity credentials."
            )
        credential = {
            "id": new_guid(),
            "name": name,
            "issuer": body["issuer"],
            "subject": body["subject"],
            "audiences": audiences,
            "description": body.get("description"),
        }
        store[credential["id"]] = credential
        self.world.touch()
        return credential

    # --- service principals ---
    def _service_principal_keyed(self, call: GraphCall, app_id: str, rest: list[str]) -> GraphResult:
        found = call.tenant.service_principal_by_app_id(app_id)
        if not rest and call.method == "PATCH":
            if found is None:
                if "create-if-missing" not in call.headers.get("prefer", "").lower():
                    raise _not_found(call, app_id)
                body = call.json()
                if body.get("appId", app_id) != app_id:
                    raise call.error(400, "Request_BadRequest", "The appId in the body does not match the key.")
                created = self._new_service_principal(call, dict(body, appId=app_id))
                return GraphResult(201, _entity(created, "servicePrincipals"))
            self._update_service_principal(call, found, call.json())
            return GraphResult(204)
        if found is None or not self.world.replication.visible(found["id"]):
            raise _not_found(call, app_id)
        return self._service_principal_member(call, found, rest)

    def _create_service_principal(self, call: GraphCall, body: JsonObject) -> GraphResult:
        app_id = body.get("appId")
        if isinstance(app_id, str) and call.tenant.service_principal_by_app_id(app_id) is not None:
            raise call.error(
                409,
                "Request_MultipleObjectsWithSameKeyValue",
                "The service principal cannot be created, updated, or restored because the service principal name "
                f"{app_id} is already in use.",
            )
        return GraphResult(201, _entity(self._new_service_principal(call, body), "servicePrincipals"))

    def _new_service_principal(self, call: GraphCall, body: JsonObject) -> JsonObject:
        props = self._validate(call, body, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal", {"id", "deletedDateTime"})
        app_id = props.get("appId")
        if not app_id:
            raise call.error(400, "Request_BadRequest", "Property 'appId' is required.")
        tenant = call.tenant
        app = tenant.application_by_app_id(app_id)
        foreign_app = None
        if app is None:
            foreign_app = next(
                (
                    a
                    for t in self.world.tenants.values()
                    if t is not tenant
                    for a in [t.application_by_app_id(app_id)]
                    if a
                ),
                None,
            )
        backing = app or foreign_app
        if backing is None or not self.world.replication.visible(backing["id"]):
            raise call.error(
                400,
                "Request_BadRequest",
                f"The appId '{app_id}' of the service principal does not reference a valid application object.",
                [{"code": "NoBackingApplicationObject", "message": "", "target": "appId"}],
            )
        roles = call.caller.roles
        if app is not None:
            if not roles & WRITE_ALL_APPS and not (
                OWNED_APPS in roles and call.caller.object_id in tenant.owners.get(app["id"], [])
            ):
                raise _denied(call)
        else:
            assert foreign_app is not None
            if foreign_app.get("signInAudience") == "AzureADMyOrg":
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"The appId '{app_id}' of the service principal does not reference a valid application object.",
                )
            if not roles & WRITE_ALL_APPS:
                raise call.error(
                    403,
                    "Authorization_RequestDenied",
                    "When using this permission, the backing application of the service principal being created must "
                    "in the local tenant",
                )
        # The caller does not become an owner of the service principal: no Microsoft source says an
        # Application.ReadWrite.OwnedBy caller does, and Terraform's azuread provider documents that a new
        # service principal has no owners unless given (emulator/FIDELITY.md). So such a caller cannot
        # change it afterwards; the product never needs to.
        sp = service_principal_from(self.world, tenant, backing, props)
        self.world.replication.created("servicePrincipal", sp["id"])
        self.world.touch()
        return sp

    def _update_service_principal(self, call: GraphCall, sp: JsonObject, body: JsonObject) -> None:
        self._require_manage(call, sp["id"])
        props = self._validate(call, body, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal", {"id", "deletedDateTime"})
        if props.get("appId", sp["appId"]) != sp["appId"]:
            raise call.error(400, "Request_BadRequest", "Property 'appId' is read-only and cannot be changed.")
        sp.update(props)
        call.tenant.reindex_service_principal(sp)
        self.world.touch()

    def _service_principal_member(self, call: GraphCall, sp: JsonObject, rest: list[str]) -> GraphResult:
        m = call.method
        if not rest:
            if m == "GET":
                self._require(call, READ_APPS)
                return GraphResult(200, _select(_entity(sp, "servicePrincipals"), call.query))
            if m == "PATCH":
                self._update_service_principal(call, sp, call.json())
                return GraphResult(204)
            if m == "DELETE":
                self._require_manage(call, sp["id"])
                self._remove_service_principal(call.tenant, sp)
                self.world.touch()
                return GraphResult(204)
            raise _method_not_allowed(call)
        if rest[0] == "appRoleAssignedTo":
            return self._assignments(call, sp, rest[1:], by_resource=True)
        if rest[0] == "appRoleAssignments":
            return self._assignments(call, sp, rest[1:], by_resource=False)
        if rest[0] == "owners" and len(rest) == 1 and m == "GET":
            self._require(call, READ_APPS)
            owners = [
                _directory_object(call.tenant.find_object(o) or {"id": o}) for o in call.tenant.owners.get(sp["id"], [])
            ]
            return GraphResult(200, {"@odata.context": f"{CONTEXT}#directoryObjects", "value": owners})
        raise call.error(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")

    # --- app role assignments (admin consent for application permissions) ---
    def _assignments(self, call: GraphCall, sp: JsonObject, rest: list[str], by_resource: bool) -> GraphResult:
        tenant = call.tenant
        side = "resourceId" if by_resource else "principalId"
        nav = "appRoleAssignedTo" if by_resource else "appRoleAssignments"
        if not rest:
            if call.method == "GET":
                self._require(call, READ_APPS | GRANT_ROLES)
                candidates = tenant.assignments_of(sp["id"]) if side == "principalId" else tenant.assignments.values()
                rows = [a for a in candidates if a[side] == sp["id"] and self.world.replication.visible(a["id"])]
                return self._list(
                    call, f"servicePrincipals('{sp['id']}')/{nav}", rows, "microsoft.graph.appRoleAssignment"
                )
            if call.method == "POST":
                assignment = self._grant(call, sp, by_resource)
                body = dict(
                    assignment, **{"@odata.context": f"{CONTEXT}#servicePrincipals('{sp['id']}')/{nav}/$entity"}
                )
                return GraphResult(201, body)
            raise _method_not_allowed(call)
        existing = tenant.assignments.get(rest[0])
        if existing is None or existing[side] != sp["id"] or not self.world.replication.visible(rest[0]):
            raise _not_found(call, rest[0])
        if call.method == "GET":
            self._require(call, READ_APPS | GRANT_ROLES)
            return GraphResult(200, existing)
        if call.method == "DELETE":
            self._require(call, GRANT_ROLES)
            tenant.remove_assignment(rest[0])
            self.world.touch()
            return GraphResult(204)
        raise _method_not_allowed(call)

    def _grant(self, call: GraphCall, sp: JsonObject, by_resource: bool) -> JsonObject:
        self._require(call, GRANT_ROLES)
        self._require(call, GRANT_READS)
        body = {k: v for k, v in call.json().items() if not k.startswith("@odata.")}
        unknown = set(body) - {
            "principalId",
            "resourceId",
            "appRoleId",
            "principalType",
            "principalDisplayName",
            "resourceDisplayName",
        }
        if unknown:
            raise call.error(
                400,
                "Request_BadRequest",
                f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.appRoleAssignment'.",
            )
        for prop in ("principalId", "resourceId", "appRoleId"):
            if not isinstance(body.get(prop), str) or not GUID.match(body[prop]):
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"Invalid value specified for property '{prop}' of resource 'AppRoleAssignment'.",
                )
        tenant = call.tenant
        path_side, path_prop = ("resourceId", "resource") if by_resource else ("principalId", "principal")
        if body[path_side].lower() != sp["id"]:
            raise call.error(
                400,
                "Request_BadRequest",
                f"The {path_prop} id in the body does not match the service principal addressed.",
            )
        principal = tenant.service_principals.get(body["principalId"].lower())
        if principal is not None and not self.world.replication.visible(principal["id"]):
            # Both of Graph's answers while a new principal replicates: 404 first, then (the write path
            # half-aware of it) 400 "Not a valid reference update.", so clients meet both in one lag.
            lag = self.world.replication.lag_ms["servicePrincipal"]
            if self.world.replication.remaining_ms(principal["id"]) <= lag / 2:
                raise call.error(400, "Request_BadRequest", NOT_A_VALID_REFERENCE)
            raise _not_found(call, body["principalId"])
        if principal is None:
            raise _not_found(call, body["principalId"])
        resource = tenant.service_principals.get(body["resourceId"].lower())
        if resource is None or not self.world.replication.visible(resource["id"]):
            raise _not_found(call, body["resourceId"])
        role = next((r for r in resource.get("appRoles", []) if r["id"] == body["appRoleId"].lower()), None)
        if role is None or "Application" not in role.get("allowedMemberTypes", []) or not role.get("isEnabled", True):
            raise call.error(
                400,
                "Request_BadRequest",
                f"Permission being assigned was not found on application '{resource['appId']}'.",
            )
        duplicate = any(
            a["resourceId"] == resource["id"] and a["appRoleId"] == role["id"]
            for a in tenant.assignments_of(principal["id"])
        )
        if duplicate:
            raise call.error(400, "Request_BadRequest", "Permission being assigned already exists on the object.")
        assignment_id = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        assignment = {
            "id": assignment_id,
            "deletedDateTime": None,
            "appRoleId": role["id"],
            "createdDateTime": iso(self.world.clock.now()),
            "principalDisplayName": principal.get("displayName"),
            "principalId": principal["id"],
            "principalType": "ServicePrincipal",
            "resourceDisplayName": resource.get("displayName"),
            "resourceId": resource["id"],
        }
        tenant.add_assignment(assignment)
        self.world.replication.created("appRoleAssignment", assignment_id)
        self.world.touch()
        return assignment

    # --- deleted items ---
    def _deleted_items(self, call: GraphCall, rest: list[str]) -> GraphResult:
        tenant = call.tenant
        # OData lets the cast segment use Graph's namespace alias: msgraph-sdk asks for "graph.application".
        if rest in (["microsoft.graph.application"], ["graph.application"]) and call.method == "GET":
            self._require(call, READ_APPS)
            return self._list(
                call,
                "directory/deletedItems/microsoft.graph.application",
                list(tenant.deleted_applications.values()),
                "microsoft.graph.application",
            )
        if not rest:
            raise _method_not_allowed(call)
        object_id = rest[0]
        if not GUID.match(object_id):
            raise call.error(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")
        app = tenant.deleted_applications.get(object_id.lower())
        if app is None:
            raise _not_found(call, object_id)
        if len(rest) == 1 and call.method == "GET":
            self._require(call, READ_APPS)
            return GraphResult(200, dict(app, **{"@odata.type": "#microsoft.graph.application"}))
        if len(rest) == 1 and call.method == "DELETE":
            self._require_manage(call, app["id"])
            del tenant.deleted_applications[app["id"]]
            tenant.owners.pop(app["id"], None)
            tenant.federated_credentials.pop(app["id"], None)
            for credential in app.get("passwordCredentials", []):
                tenant.password_hashes.pop(credential["keyId"], None)
            self.world.touch()
            return GraphResult(204)
        if rest[1:] == ["restore"] and call.method == "POST":
            self._require_manage(call, app["id"])
            del tenant.deleted_applications[app["id"]]
            app["deletedDateTime"] = None
            tenant.add_application(app)
            self.world.touch()
            return GraphResult(200, dict(app, **{"@odata.type": "#microsoft.graph.application"}))
        raise _method_not_allowed(call)

    # --- policies and organization ---
    def _app_policy(self, call: GraphCall) -> GraphResult:
        policy = call.tenant.app_management_policy
        if call.method == "GET":
            self._require(call, READ_POLICY)
            return GraphResult(
                200, dict(policy, **{"@odata.context": f"{CONTEXT}#policies/defaultAppManagementPolicy/$entity"})
            )
        if call.method == "PATCH":
            self._require(call, WRITE_POLICY)
            body = {k: v for k, v in call.json().items() if not k.startswith("@odata.")}
            unknown = set(body) - {
                "isEnabled",
                "applicationRestrictions",
                "servicePrincipalRestrictions",
                "displayName",
                "description",
            }
            if unknown:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"The property '{sorted(unknown)[0]}' does not exist on type 'microsoft.graph.tenantAppManagementPolicy'.",
                )
            policy.update(body)
            self.world.touch()
            return GraphResult(204)
        raise _method_not_allowed(call)

    def _organization(self, call: GraphCall) -> GraphResult:
        self._require(call, READ_ORG)
        tenant = call.tenant
        org = {
            "id": tenant.id,
            "displayName": tenant.display_name,
            "tenantType": "AAD",
            "verifiedDomains": [
                {
                    "capabilities": "Email, OfficeCommunicationsOnline",
                    "isDefault": True,
                    "isInitial": True,
                    "name": tenant.default_domain,
                    "type": "Managed",
                }
            ],
        }
        return GraphResult(200, {"@odata.context": f"{CONTEXT}#organization", "value": [org]})

    # --- collections: $filter, $select, $top, paging ---
    def _list(self, call: GraphCall, context: str, rows: list[JsonObject], type_name: str) -> GraphResult:
        self._require(call, READ_APPS | (GRANT_ROLES if "appRole" in context else set()))
        query = call.query
        if "$filter" in query:
            predicate = _compile_filter(call, query["$filter"])
            rows = [r for r in rows if predicate(r)]
        start = _decode_skiptoken(call, query.get("$skiptoken"))
        top = query.get("$top")
        page_size = DEFAULT_PAGE
        if top is not None:
            if not top.isdigit() or not 1 <= int(top) <= MAX_PAGE:
                raise call.error(
                    400,
                    "Request_BadRequest",
                    f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive.",
                )
            page_size = int(top)
        page = [_select(dict(r), query) for r in rows[start : start + page_size]]
        body: JsonObject = {"@odata.context": f"{CONTEXT}#{context}", "value": page}
        if start + page_size < len(rows):
            token = base64.urlsafe_b64encode(str(start + page_size).encode()).decode()
            params = [f"{k}={v}" for k, v in query.items() if k != "$skiptoken"]
            params.append(f"$skiptoken={token}")
            base = f"https://{call.request.headers['host']}" if call.request else ""
            body["@odata.nextLink"] = f"{base}/v1.0/{'/'.join(call.segments)}?{'&'.join(params)}"
        return GraphResult(200, body)

    # --- $batch ---
    def _batch(self, call: GraphCall) -> GraphResult:
        body = call.json()
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise call.error(400, "BadRequest", "Invalid batch payload format.")
        if len(requests) > MAX_BATCH:
            raise call.error(400, "BadRequest", "Number of requests inside batch exceeds the limit.")
        ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
        if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
            raise call.error(400, "BadRequest", "Batch request ids must be unique non-empty strings.")
        responses: list[JsonObject] = []
        statuses: dict[str, int] = {}
        for item in requests:
            result = self._batch_item(call, item, statuses)
            statuses[item["id"]] = result.status
            entry: JsonObject = {
                "id": item["id"],
                "status": result.status,
                "headers": {"Content-Type": "application/json"} | result.headers,
            }
            if result.body is not None:
                entry["body"] = result.body
            responses.append(entry)
        return GraphResult(200, {"responses": responses})

    def _batch_item(self, call: GraphCall, item: JsonObject, statuses: dict[str, int]) -> GraphResult:
        method, url = str(item.get("method", "")).upper(), item.get("url")
        if method not in ("GET", "POST", "PATCH", "DELETE", "PUT") or not isinstance(url, str):
            return GraphResult(
                400, {"error": {"code": "BadRequest", "message": "Invalid method or url in batch request."}}
            )
        for dependency in item.get("dependsOn") or []:
            if not 200 <= statuses.get(dependency, 424) < 300:
                return GraphResult(424, {"error": {"code": "FailedDependency", "message": "Failed dependency."}})
        # Graph wants URLs relative to the version root; an absolute one fails this item with
        # "Resource not found for the segment ..." (microsoftgraph/msgraph-sdk-python#1015), as here.
        path = urlsplit(url if url.startswith("/") else "/" + url)
        # Graph throttles and fails sub-requests individually; the stand-in's faults do the same.
        _, failure = self.faults.choose("graph", method, "/v1.0" + path.path)
        if failure is not None and failure.kind == "status":
            error = injected_error("graph", failure.status, failure.retry_after)
            return GraphResult(
                error.response.status_code,
                json.loads(bytes(error.response.body)),
                {k: v for k, v in error.response.headers.items() if k.lower() == "retry-after"},
            )
        sub_body = item.get("body")
        sub = GraphCall(
            method=method,
            segments=_split(unquote(path.path)),
            query=dict(parse_qsl(path.query)),
            headers={str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()},
            raw_body=json.dumps(sub_body).encode() if sub_body is not None else None,
            caller=call.caller,
            tenant=call.tenant,
            request=None,
        )
        return self.dispatch(sub)


# --- helpers ---


VERIFIED_PUBLISHER_NONE = {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None}


def application_resource(tenant: Tenant, object_id: str, app_id: str, created: str, display_name: str) -> JsonObject:
    """A new application as Graph v1.0 returns it: every property, at Graph's defaults.

    The property set is the one recorded from real Graph (Azure/azure-powershell's MSGraph
    Application.Recording.json and Azure/azure-cli's role test recordings; tests/emulator/recorded.py)."""
    return {
        "id": object_id,
        "addIns": [],
        "applicationTemplateId": None,
        "certification": None,
        "defaultRedirectUri": None,
        "disabledByMicrosoftStatus": None,
        "groupMembershipClaims": None,
        "isDeviceOnlyAuthSupported": None,
        "isFallbackPublicClient": None,
        "optionalClaims": None,
        "parentalControlSettings": {"countriesBlockedForMinors": [], "legalAgeGroupRule": "Allow"},
        "tokenEncryptionKeyId": None,
        "verifiedPublisher": dict(VERIFIED_PUBLISHER_NONE),
        "deletedDateTime": None,
        "appId": app_id,
        "createdDateTime": created,
        "description": None,
        "displayName": display_name,
        "identifierUris": [],
        "notes": None,
        "publisherDomain": tenant.default_domain,
        "serviceManagementReference": None,
        "signInAudience": "AzureADMyOrg",
        "tags": [],
        "uniqueName": None,
        "api": {
            "acceptMappedClaims": None,
            "knownClientApplications": [],
            "requestedAccessTokenVersion": None,
            "oauth2PermissionScopes": [],
            "preAuthorizedApplications": [],
        },
        "appRoles": [],
        "info": {
            "logoUrl": None,
            "marketingUrl": None,
            "privacyStatementUrl": None,
            "supportUrl": None,
            "termsOfServiceUrl": None,
        },
        "keyCredentials": [],
        "passwordCredentials": [],
        "publicClient": {"redirectUris": []},
        "requiredResourceAccess": [],
        "spa": {"redirectUris": []},
        "web": {
            "homePageUrl": None,
            "logoutUrl": None,
            "redirectUris": [],
            "implicitGrantSettings": {"enableAccessTokenIssuance": False, "enableIdTokenIssuance": False},
        },
    }


def service_principal_from(world: World, tenant: Tenant, app: JsonObject, props: JsonObject) -> JsonObject:
    """A new service principal for `app` in `tenant` (Graph's POST and the admin consent both use it), with the
    property set recorded from real Graph (Azure/azure-cli's test_service_principal_scenario recording)."""
    home = next(t for t in world.tenants.values() if app["id"] in t.applications)
    sp: JsonObject = {
        "id": new_guid(),
        "addIns": [],
        "alternativeNames": [],
        "applicationTemplateId": None,
        "disabledByMicrosoftStatus": None,
        "homepage": None,
        "info": dict(app.get("info") or {}),
        "loginUrl": None,
        "logoutUrl": None,
        "notificationEmailAddresses": [],
        "preferredSingleSignOnMode": None,
        "preferredTokenSigningKeyThumbprint": None,
        "replyUrls": [],
        "resourceSpecificApplicationPermissions": [],
        "samlSingleSignOnSettings": None,
        "tokenEncryptionKeyId": None,
        "verifiedPublisher": dict(VERIFIED_PUBLISHER_NONE),
        "deletedDateTime": None,
        "accountEnabled": True,
        "appDisplayName": app["displayName"],
        "appDescription": app.get("description"),
        "appId": app["appId"],
        "appOwnerOrganizationId": home.id,
        "appRoleAssignmentRequired": False,
        "createdDateTime": iso(world.clock.now()),
        "description": None,
        "displayName": app["displayName"],
        "notes": None,
        "servicePrincipalNames": [app["appId"], *app.get("identifierUris", [])],
        "servicePrincipalType": "Application",
        "signInAudience": app.get("signInAudience", "AzureADMyOrg"),
        "tags": [],
        "appRoles": list(app.get("appRoles", [])),
        "oauth2PermissionScopes": [],
        "keyCredentials": [],
        "passwordCredentials": [],
    }
    sp.update({k: v for k, v in props.items() if k != "appId"})
    tenant.add_service_principal(sp)
    return sp


def _split(path: str) -> list[str]:
    # Tolerate the SDK's occasional double slash ("/v1.0//applications").
    return [segment for segment in path.split("/") if segment]


def _entity(obj: JsonObject, entity_set: str) -> JsonObject:
    return {"@odata.context": f"{CONTEXT}#{entity_set}/$entity", **obj}


def _directory_object(obj: JsonObject) -> JsonObject:
    kind = (
        "servicePrincipal"
        if "servicePrincipalType" in obj
        else "application"
        if "signInAudience" in obj
        else "directoryObject"
    )
    return {
        "@odata.type": f"#microsoft.graph.{kind}",
        **{k: obj.get(k) for k in ("id", "appId", "displayName") if k in obj},
    }


def _select(obj: JsonObject, query: dict[str, str]) -> JsonObject:
    selected = query.get("$select")
    if not selected:
        return obj
    keep = {p.strip() for p in selected.split(",")} | {"id"}
    return {k: v for k, v in obj.items() if k in keep or k.startswith("@odata.")}


FILTER_EQ = re.compile(r"^(?P<prop>[A-Za-z]+)\s+eq\s+'(?P<value>(?:[^']|'')*)'$")
FILTER_STARTS = re.compile(r"^startswith\((?P<prop>[A-Za-z]+)\s*,\s*'(?P<value>(?:[^']|'')*)'\)$")
FILTER_ANY = re.compile(r"^(?P<prop>[A-Za-z]+)/any\((?P<var>\w+):\s*(?P=var)\s+eq\s+'(?P<value>(?:[^']|'')*)'\)$")


def _compile_filter(call: GraphCall, expression: str) -> Callable[[JsonObject], bool]:
    """The $filter forms directory queries support without advanced query: eq, startswith, any(), and."""
    clauses = [c.strip() for c in re.split(r"\s+and\s+", expression.strip()) if c.strip()]
    predicates: list[Callable[[JsonObject], bool]] = []
    for clause in clauses:
        if m := FILTER_EQ.match(clause):
            predicates.append(_equals(m.group("prop"), _unquote_odata(m.group("value"))))
        elif m := FILTER_STARTS.match(clause):
            predicates.append(_starts_with(m.group("prop"), _unquote_odata(m.group("value"))))
        elif m := FILTER_ANY.match(clause):
            predicates.append(_any_equals(m.group("prop"), _unquote_odata(m.group("value"))))
        else:
            raise call.error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")
    return lambda row: all(p(row) for p in predicates)


def _unquote_odata(value: str) -> str:
    return value.replace("''", "'").lower()


def _equals(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: str(row.get(prop) or "").lower() == value


def _starts_with(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: str(row.get(prop) or "").lower().startswith(value)


def _any_equals(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: any(str(item).lower() == value for item in (row.get(prop) or []))


def _decode_skiptoken(call: GraphCall, token: str | None) -> int:
    if not token:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(token.encode()).decode()))
    except ValueError as exc:
        raise call.error(
            400, "Request_BadRequest", "The specified page token value has expired or is invalid."
        ) from exc


def _parse_duration(text: str) -> timedelta:
    """ISO 8601 durations as app management policies write them (P90D, P1Y, PT12H...)."""
    m = re.fullmatch(r"P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?", text)
    if not m:
        raise ValueError(f"not an ISO 8601 duration: {text}")
    years, months, days, hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
    return timedelta(days=years * 365 + months * 30 + days, hours=hours, minutes=minutes, seconds=seconds)


def new_secret_text() -> str:
    # Entra's secrets are 40 characters with "Q~" after a short prefix; the shape matters only to
    # scanners that look for leaked secrets, so tests can find one in a log.
    prefix = "".join(secrets.choice(SECRET_ALPHABET[:62]) for _ in range(3))
    body = "".join(secrets.choice(SECRET_ALPHABET) for _ in range(34))
    return f"{prefix}8Q~{body}"


def _denied(call: GraphCall) -> ServiceError:
    return call.error(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")


def _not_found(call: GraphCall, object_id: str) -> ServiceError:
    return call.error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def _method_not_allowed(call: GraphCall) -> ServiceError:
    return call.error(405, "Request_BadRequest", f"The HTTP method '{call.method}' is not allowed for this resource.")
