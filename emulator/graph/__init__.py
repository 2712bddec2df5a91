"""Microsoft Graph v1.0, the subset this product calls: applications, service principals, consent.

This module is the transport and the router. Requests are dispatched on OData paths (including key
syntax such as `applications(uniqueName='x')`) by one resolver, so `$batch` sub-requests take exactly
the same path as direct ones. Each resource kind has its own module; authorization.py holds the rules
of who may do what, odata.py the query options and paging. Reads and dependent writes honour
replication lag (state.Replication); alternate-key upserts see the write replica, which is what makes
them the safe way to create idempotently.
"""

from __future__ import annotations

import json
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..errors import ServiceError
from ..faults import FaultInjector
from ..state import World
from ..tokens import TokenService
from .applications import application_keyed, application_member, application_resource, create_application
from .authorization import READ_APPS, authenticate, require
from .batch import batch
from .calls import GraphCall, GraphResult, method_not_allowed, visible, visible_by_id
from .deleted_items import deleted_items
from .odata import KEYED, collection, split_path
from .organization import organization
from .passwords import new_secret_text
from .policy import app_policy
from .service_principals import (
    create_service_principal,
    service_principal_from,
    service_principal_keyed,
    service_principal_member,
)

__all__ = [
    "GraphCall",
    "GraphResult",
    "GraphService",
    "application_resource",
    "new_secret_text",
    "service_principal_from",
]


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
        caller, tenant = authenticate(request, self.tokens, self.world)
        body = await request.body()
        call = GraphCall(
            method=request.method,
            segments=split_path(request.path_params["rest"]),
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

    def dispatch(self, call: GraphCall) -> GraphResult:
        try:
            return self._route(call)
        except ServiceError as error:
            response = error.response
            return GraphResult(response.status_code, json.loads(bytes(response.body)), dict(response.headers))

    # --- routing ---
    def _route(self, call: GraphCall) -> GraphResult:
        world = self.world
        s, m = call.segments, call.method
        if not s:
            raise call.error(400, "BadRequest", "Resource not found for the segment ''.")
        head = s[0]
        if head == "$batch" and len(s) == 1 and m == "POST":
            return batch(call, self.faults, self.dispatch)
        if head == "organization" and len(s) == 1 and m == "GET":
            return organization(call)
        if s[:2] == ["policies", "defaultAppManagementPolicy"] and len(s) == 2:
            return app_policy(world, call)
        if s[:2] == ["directory", "deletedItems"]:
            return deleted_items(world, call, s[2:])
        keyed = KEYED.match(head)
        if keyed:
            entity_set, key, value = keyed.group("set"), keyed.group("key"), keyed.group("value")
            if entity_set == "applications":
                return application_keyed(world, call, key, value, s[1:])
            if key != "appId":
                raise call.error(400, "BadRequest", f"Resource not found for the segment '{head}'.")
            return service_principal_keyed(world, call, value, s[1:])
        if head == "applications":
            if len(s) == 1:
                if m == "GET":
                    rows = visible(world, call.tenant.applications)
                    require(call, READ_APPS)
                    return collection(call, "applications", rows, "microsoft.graph.application")
                if m == "POST":
                    return create_application(world, call)
                raise method_not_allowed(call)
            app = visible_by_id(world, call, call.tenant.applications, s[1])
            return application_member(world, call, app, s[2:])
        if head == "servicePrincipals":
            if len(s) == 1:
                if m == "GET":
                    rows = visible(world, call.tenant.service_principals)
                    require(call, READ_APPS)
                    return collection(call, "servicePrincipals", rows, "microsoft.graph.servicePrincipal")
                if m == "POST":
                    return create_service_principal(world, call, call.json())
                raise method_not_allowed(call)
            sp = visible_by_id(world, call, call.tenant.service_principals, s[1])
            return service_principal_member(world, call, sp, s[2:])
        raise call.error(400, "BadRequest", f"Resource not found for the segment '{head}'.")
