"""Service principals: create (direct or upsert by appId), read, update and delete them, and their member paths."""

from __future__ import annotations

from typing import Any

from ..clock import iso
from ..state import JsonObject, Tenant, World, new_guid
from .app_role_assignments import assignments
from .authorization import OWNED_APPS, READ_APPS, WRITE_ALL_APPS, denied, require, require_manage
from .calls import GUID, GraphCall, GraphResult, method_not_allowed, not_found
from .odata import CONTEXT, directory_object, entity, select
from .validation import is_bool, is_str, is_str_list, valid_tags, validate

SERVICE_PRINCIPAL_PROPERTIES: dict[str, Any] = {
    "appId": lambda v: isinstance(v, str) and bool(GUID.match(v)),
    "accountEnabled": is_bool,
    "tags": valid_tags,
    "notes": lambda v: v is None or is_str(v, 1024),
    "description": lambda v: v is None or is_str(v, 1024),
    "appRoleAssignmentRequired": is_bool,
    "displayName": lambda v: is_str(v, 256),
    "servicePrincipalNames": is_str_list,
}

VERIFIED_PUBLISHER_NONE = {"displayName": None, "verifiedPublisherId": None, "addedDateTime": None}


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


def service_principal_keyed(world: World, call: GraphCall, app_id: str, rest: list[str]) -> GraphResult:
    found = call.tenant.service_principal_by_app_id(app_id)
    if not rest and call.method == "PATCH":
        if found is None:
            if "create-if-missing" not in call.headers.get("prefer", "").lower():
                raise not_found(call, app_id)
            body = call.json()
            if body.get("appId", app_id) != app_id:
                raise call.error(400, "Request_BadRequest", "The appId in the body does not match the key.")
            created = _new_service_principal(world, call, dict(body, appId=app_id))
            return GraphResult(201, entity(created, "servicePrincipals"))
        _update_service_principal(world, call, found, call.json())
        return GraphResult(204)
    if found is None or not world.replication.visible(found["id"]):
        raise not_found(call, app_id)
    return service_principal_member(world, call, found, rest)


def create_service_principal(world: World, call: GraphCall, body: JsonObject) -> GraphResult:
    app_id = body.get("appId")
    if isinstance(app_id, str) and call.tenant.service_principal_by_app_id(app_id) is not None:
        raise call.error(
            409,
            "Request_MultipleObjectsWithSameKeyValue",
            "The service principal cannot be created, updated, or restored because the service principal name "
            f"{app_id} is already in use.",
        )
    return GraphResult(201, entity(_new_service_principal(world, call, body), "servicePrincipals"))


def _new_service_principal(world: World, call: GraphCall, body: JsonObject) -> JsonObject:
    props = validate(call, body, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal", {"id", "deletedDateTime"})
    app_id = props.get("appId")
    if not app_id:
        raise call.error(400, "Request_BadRequest", "Property 'appId' is required.")
    tenant = call.tenant
    app = tenant.application_by_app_id(app_id)
    foreign_app = None
    if app is None:
        foreign_app = next(
            (a for t in world.tenants.values() if t is not tenant for a in [t.application_by_app_id(app_id)] if a),
            None,
        )
    backing = app or foreign_app
    if backing is None or not world.replication.visible(backing["id"]):
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
            raise denied(call)
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
    sp = service_principal_from(world, tenant, backing, props)
    world.replication.created("servicePrincipal", sp["id"])
    world.touch()
    return sp


def _update_service_principal(world: World, call: GraphCall, sp: JsonObject, body: JsonObject) -> None:
    require_manage(call, sp["id"])
    props = validate(call, body, SERVICE_PRINCIPAL_PROPERTIES, "servicePrincipal", {"id", "deletedDateTime"})
    if props.get("appId", sp["appId"]) != sp["appId"]:
        raise call.error(400, "Request_BadRequest", "Property 'appId' is read-only and cannot be changed.")
    sp.update(props)
    call.tenant.reindex_service_principal(sp)
    world.touch()


def service_principal_member(world: World, call: GraphCall, sp: JsonObject, rest: list[str]) -> GraphResult:
    m = call.method
    if not rest:
        if m == "GET":
            require(call, READ_APPS)
            return GraphResult(200, select(entity(sp, "servicePrincipals"), call.query))
        if m == "PATCH":
            _update_service_principal(world, call, sp, call.json())
            return GraphResult(204)
        if m == "DELETE":
            require_manage(call, sp["id"])
            remove_service_principal(call.tenant, sp)
            world.touch()
            return GraphResult(204)
        raise method_not_allowed(call)
    if rest[0] == "appRoleAssignedTo":
        return assignments(world, call, sp, rest[1:], by_resource=True)
    if rest[0] == "appRoleAssignments":
        return assignments(world, call, sp, rest[1:], by_resource=False)
    if rest[0] == "owners" and len(rest) == 1 and m == "GET":
        require(call, READ_APPS)
        owners = [
            directory_object(call.tenant.find_object(o) or {"id": o}) for o in call.tenant.owners.get(sp["id"], [])
        ]
        return GraphResult(200, {"@odata.context": f"{CONTEXT}#directoryObjects", "value": owners})
    raise call.error(400, "BadRequest", f"Resource not found for the segment '{rest[0]}'.")


def remove_service_principal(tenant: Tenant, sp: JsonObject) -> None:
    tenant.remove_service_principal(sp["id"])
    tenant.owners.pop(sp["id"], None)
    for aid in [aid for aid, a in tenant.assignments.items() if sp["id"] in (a["principalId"], a["resourceId"])]:
        tenant.remove_assignment(aid)
