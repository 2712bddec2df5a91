"""An application's federated identity credentials: list, create, read and delete them."""

from __future__ import annotations

import re

from ..state import JsonObject, World, new_guid
from .authorization import READ_APPS, require, require_manage
from .calls import GraphCall, GraphResult, method_not_allowed, not_found
from .odata import CONTEXT
from .validation import is_str, is_str_list


def federated_credentials(world: World, call: GraphCall, app: JsonObject, rest: list[str]) -> GraphResult:
    store = call.tenant.federated_credentials.setdefault(app["id"], {})
    context = f"{CONTEXT}#applications('{app['id']}')/federatedIdentityCredentials"
    if not rest:
        if call.method == "GET":
            require(call, READ_APPS)
            return GraphResult(200, {"@odata.context": context, "value": list(store.values())})
        if call.method == "POST":
            require_manage(call, app["id"])
            credential = _new_federated_credential(world, call, store)
            return GraphResult(201, dict(credential, **{"@odata.context": f"{context}/$entity"}))
        raise method_not_allowed(call)
    ref = rest[0]
    found = store.get(ref) or next((c for c in store.values() if c["name"] == ref), None)
    if found is None:
        raise not_found(call, ref)
    if call.method == "GET":
        require(call, READ_APPS)
        return GraphResult(200, dict(found, **{"@odata.context": f"{context}/$entity"}))
    if call.method == "DELETE":
        require_manage(call, app["id"])
        del store[found["id"]]
        world.touch()
        return GraphResult(204)
    raise method_not_allowed(call)


def _new_federated_credential(world: World, call: GraphCall, store: dict[str, JsonObject]) -> JsonObject:
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
        if not is_str(body.get(prop), 600) or not body[prop]:
            raise call.error(
                400,
                "Request_BadRequest",
                f"Invalid value specified for property '{prop}' of resource 'FederatedIdentityCredential'.",
            )
    audiences = body.get("audiences")
    if not is_str_list(audiences, 600) or len(audiences or []) != 1:
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
    world.touch()
    return credential
