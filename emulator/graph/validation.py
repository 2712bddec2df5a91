"""Request bodies against an entity type's allow-list of properties, and the value checks those lists use."""

from __future__ import annotations

from typing import Any

from ..state import JsonObject
from .calls import GUID, GraphCall


def is_str(value: Any, max_len: int = 1024) -> bool:
    return isinstance(value, str) and len(value) <= max_len


def is_str_list(value: Any, max_len: int = 256) -> bool:
    return isinstance(value, list) and all(is_str(v, max_len) for v in value)


def valid_tags(value: Any) -> bool:
    # Tags: "Individual tag size must be between 1 and 256 characters (inclusive)", "No whitespaces or
    # duplicate tags allowed", for every signInAudience (the Tags row of
    # https://learn.microsoft.com/entra/identity-platform/supported-accounts-validation).
    return (
        isinstance(value, list)
        and all(isinstance(t, str) and 1 <= len(t) <= 256 and not any(c.isspace() for c in t) for t in value)
        and len({t.lower() for t in value}) == len(value)
    )


def valid_required_resource_access(value: Any) -> bool:
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


def is_obj(value: Any) -> bool:
    return isinstance(value, dict)


def is_bool(value: Any) -> bool:
    return isinstance(value, bool)


def validate(
    call: GraphCall, body: JsonObject, allowed: dict[str, Any], type_name: str, read_only: set[str]
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
