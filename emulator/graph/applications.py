"""Applications: create (direct or upsert by uniqueName), read, update and delete them, and route their member paths."""

from __future__ import annotations

from typing import Any

from ..clock import iso
from ..state import JsonObject, Tenant, World, new_guid
from .authorization import OWNED_APPS, READ_APPS, WRITE_ALL_APPS, denied, require, require_manage
from .calls import GraphCall, GraphResult, method_not_allowed, not_found
from .federated_credentials import federated_credentials
from .key_credentials import add_key, remove_key, replace_key_credentials, with_keys
from .odata import entity, select
from .owners import application_owners
from .passwords import add_password, remove_password
from .service_principals import VERIFIED_PUBLISHER_NONE, remove_service_principal
from .validation import is_bool, is_obj, is_str, is_str_list, valid_required_resource_access, valid_tags, validate

SIGN_IN_AUDIENCES = {
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
}

APPLICATION_PROPERTIES: dict[str, Any] = {
    "displayName": lambda v: is_str(v, 120) and bool(v.strip()),
    "description": lambda v: v is None or is_str(v, 1024),
    "notes": lambda v: v is None or is_str(v, 1024),
    "tags": valid_tags,
    "signInAudience": lambda v: v in SIGN_IN_AUDIENCES,
    "requiredResourceAccess": valid_required_resource_access,
    "uniqueName": lambda v: is_str(v, 256) and bool(v),
    "identifierUris": is_str_list,
    "web": is_obj,
    "spa": is_obj,
    "publicClient": is_obj,
    "api": is_obj,
    "info": is_obj,
    "optionalClaims": lambda v: v is None or is_obj(v),
    "appRoles": lambda v: isinstance(v, list),
    "isFallbackPublicClient": lambda v: v is None or is_bool(v),
    "serviceManagementReference": lambda v: v is None or is_str(v, 128),
    "groupMembershipClaims": lambda v: v is None or is_str(v, 64),
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


def application_keyed(world: World, call: GraphCall, key: str, value: str, rest: list[str]) -> GraphResult:
    tenant = call.tenant
    found = tenant.application_by_unique_name(value) if key == "uniqueName" else tenant.application_by_app_id(value)
    if not rest and call.method == "PATCH":
        prefer = call.headers.get("prefer", "")
        if found is None:
            if "create-if-missing" not in prefer.lower():
                raise not_found(call, value)
            if key == "uniqueName":
                _refuse_name_held_by_deleted(call, value)
            body = call.json()
            if key == "appId":
                raise call.error(400, "Request_BadRequest", "The property 'appId' cannot be used as an upsert key.")
            if "uniqueName" in body and body["uniqueName"] != value:
                raise call.error(400, "Request_BadRequest", "The uniqueName in the body does not match the key.")
            body["uniqueName"] = value
            created = _new_application(world, call, body)
            location = f"https://graph.microsoft.com/v2/{tenant.id}/directoryObjects/{created['id']}/Microsoft.DirectoryServices.Application"
            return GraphResult(201, entity(created, "applications"), {"Location": location})
        # An upsert that finds the object updates it; the write replica knows it exists.
        _update_application(world, call, found, call.json())
        return GraphResult(204)
    if found is None or not world.replication.visible(found["id"]):
        raise not_found(call, value)
    return application_member(world, call, found, rest)


def application_member(world: World, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
    m = call.method
    if not rest:
        if m == "GET":
            require(call, READ_APPS)
            return GraphResult(200, with_keys(call.tenant, select(entity(app, "applications"), call.query), call.query))
        if m == "PATCH":
            _update_application(world, call, app, call.json())
            return GraphResult(204)
        if m == "DELETE":
            _delete_application(world, call, app)
            return GraphResult(204)
        raise method_not_allowed(call)
    action = rest[0]
    if action == "addPassword" and m == "POST" and len(rest) == 1:
        return add_password(world, call, app)
    if action == "removePassword" and m == "POST" and len(rest) == 1:
        return remove_password(world, call, app)
    if action == "addKey" and m == "POST" and len(rest) == 1:
        return add_key(world, call, app)
    if action == "removeKey" and m == "POST" and len(rest) == 1:
        return remove_key(world, call, app)
    if action == "owners":
        return application_owners(world, call, app, rest[1:])
    if action == "federatedIdentityCredentials":
        return federated_credentials(world, call, app, rest[1:])
    raise call.error(400, "BadRequest", f"Resource not found for the segment '{action}'.")


def create_application(world: World, call: GraphCall) -> GraphResult:
    created = _new_application(world, call, call.json())
    return GraphResult(201, entity(created, "applications"))


def _new_application(world: World, call: GraphCall, body: JsonObject) -> JsonObject:
    if not call.caller.roles & (WRITE_ALL_APPS | {OWNED_APPS}):
        raise denied(call)
    body = dict(body)
    key_credentials = body.pop("keyCredentials", None)
    props = validate(call, body, APPLICATION_PROPERTIES, "application", READ_ONLY_APPLICATION)
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
        _refuse_name_held_by_deleted(call, props["uniqueName"])
    object_id, app_id = new_guid(), new_guid()
    app = application_resource(tenant, object_id, app_id, iso(world.clock.now()), props["displayName"])
    app.update(props)
    if key_credentials is not None:
        # Graph creates an application whose body carries keyCredentials (recorded: azure-cli's role tests,
        # tests/emulator/recorded.py "graph-create-app-with-key-credentials").
        replace_key_credentials(world, call, app, key_credentials)
    tenant.add_application(app)
    # The creator becomes an owner. Indirect only (emulator/FIDELITY.md, G9): Application.ReadWrite.OwnedBy
    # "Allows the app to create other applications, and fully manage those applications" yet "cannot update
    # any apps that it is not an owner of" (https://learn.microsoft.com/graph/permissions-reference#applicationreadwriteownedby).
    tenant.owners[object_id] = [call.caller.object_id]
    world.replication.created("application", object_id)
    world.touch()
    return app


def _refuse_name_held_by_deleted(call: GraphCall, unique_name: str) -> None:
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


def _update_application(world: World, call: GraphCall, app: JsonObject, body: JsonObject) -> None:
    require_manage(call, app["id"])
    body = dict(body)
    key_credentials = body.pop("keyCredentials", None)
    props = validate(call, body, APPLICATION_PROPERTIES, "application", READ_ONLY_APPLICATION)
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
    if key_credentials is not None:
        # PATCH replaces the whole collection (emulator/graph/key_credentials.py).
        replace_key_credentials(world, call, app, key_credentials)
    app.update(props)
    call.tenant.reindex_application(app)
    world.touch()


def _delete_application(world: World, call: GraphCall, app: JsonObject) -> None:
    require_manage(call, app["id"])
    tenant = call.tenant
    tenant.remove_application(app["id"])
    app["deletedDateTime"] = iso(world.clock.now())
    tenant.deleted_applications[app["id"]] = app
    # Deleting an application also deletes its service principal in the home tenant.
    home_sp = tenant.service_principal_by_app_id(app["appId"])
    if home_sp is not None:
        remove_service_principal(tenant, home_sp)
    world.touch()
