"""An application's owners: list them, and add one by reference (owners/$ref)."""

from __future__ import annotations

from ..state import JsonObject, World
from .authorization import READ_APPS, require, require_manage
from .calls import GUID, GraphCall, GraphResult, method_not_allowed, not_found
from .odata import CONTEXT, directory_object


def application_owners(world: World, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
    tenant = call.tenant
    if not rest and call.method == "GET":
        require(call, READ_APPS)
        owners = [directory_object(tenant.find_object(oid) or {"id": oid}) for oid in tenant.owners.get(app["id"], [])]
        return GraphResult(200, {"@odata.context": f"{CONTEXT}#directoryObjects", "value": owners})
    if rest == ["$ref"] and call.method == "POST":
        require_manage(call, app["id"])
        ref = call.json().get("@odata.id", "")
        owner_id = str(ref).rstrip("/").rsplit("/", 1)[-1]
        if not GUID.match(owner_id) or tenant.service_principals.get(owner_id) is None:
            raise not_found(call, owner_id)
        owner_ids = tenant.owners.setdefault(app["id"], [])
        if owner_id in owner_ids:
            raise call.error(
                400,
                "Request_BadRequest",
                "One or more added object references already exist for the following modified properties: 'owners'.",
            )
        owner_ids.append(owner_id)
        world.touch()
        return GraphResult(204)
    raise method_not_allowed(call)
