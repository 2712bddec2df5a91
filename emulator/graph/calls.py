"""One Graph request (direct or inside $batch), its result, and the answers and lookups every resource shares."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request

from ..errors import ServiceError, graph_error
from ..state import JsonObject, Tenant, World
from ..tokens import Caller

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


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


# --- lookups honouring replication ---


def visible(world: World, table: dict[str, JsonObject]) -> list[JsonObject]:
    return [o for oid, o in table.items() if world.replication.visible(oid)]


def visible_by_id(world: World, call: GraphCall, table: dict[str, JsonObject], object_id: str) -> JsonObject:
    if not GUID.match(object_id):
        raise call.error(400, "Request_BadRequest", f"Invalid object identifier '{object_id}'.")
    found = table.get(object_id.lower())
    if found is None or not world.replication.visible(found["id"]):
        raise not_found(call, object_id)
    return found


# --- answers every resource gives ---


def not_found(call: GraphCall, object_id: str) -> ServiceError:
    return call.error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{object_id}' does not exist or one of its queried reference-property objects are not present.",
    )


def method_not_allowed(call: GraphCall) -> ServiceError:
    return call.error(405, "Request_BadRequest", f"The HTTP method '{call.method}' is not allowed for this resource.")
