"""Deleted applications (directory/deletedItems): list, read, restore and permanently delete them."""

from __future__ import annotations

from ..state import World
from .authorization import READ_APPS, require, require_manage
from .calls import GUID, GraphCall, GraphResult, method_not_allowed, not_found
from .odata import collection


def deleted_items(world: World, call: GraphCall, rest: list[str]) -> GraphResult:
    tenant = call.tenant
    # OData lets the cast segment use Graph's namespace alias: msgraph-sdk asks for "graph.application".
    if rest in (["microsoft.graph.application"], ["graph.application"]) and call.method == "GET":
        require(call, READ_APPS)
        return collection(
            call,
            "directory/deletedItems/microsoft.graph.application",
            list(tenant.deleted_applications.values()),
            "microsoft.graph.application",
        )
    if not rest:
        raise method_not_allowed(call)
    object_id = rest[0]
    if not GUID.match(object_id):
        raise call.error(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")
    app = tenant.deleted_applications.get(object_id.lower())
    if app is None:
        raise not_found(call, object_id)
    if len(rest) == 1 and call.method == "GET":
        require(call, READ_APPS)
        return GraphResult(200, dict(app, **{"@odata.type": "#microsoft.graph.application"}))
    if len(rest) == 1 and call.method == "DELETE":
        require_manage(call, app["id"])
        del tenant.deleted_applications[app["id"]]
        tenant.owners.pop(app["id"], None)
        tenant.federated_credentials.pop(app["id"], None)
        for credential in app.get("passwordCredentials", []):
            tenant.password_hashes.pop(credential["keyId"], None)
        world.touch()
        return GraphResult(204)
    if rest[1:] == ["restore"] and call.method == "POST":
        require_manage(call, app["id"])
        del tenant.deleted_applications[app["id"]]
        app["deletedDateTime"] = None
        tenant.add_application(app)
        world.touch()
        return GraphResult(200, dict(app, **{"@odata.type": "#microsoft.graph.application"}))
    raise method_not_allowed(call)
