"""The stand-in's own control API under /_emulator: seed tenants, workspaces and RBAC, set policies, faults and the clock.

Off unless the process starts with --admin. Every call but /health needs the admin key the
ready line prints, so nothing else on the machine can rewrite the world a test relies on.
"""

from __future__ import annotations

import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from .arm import add_workspace
from .arm_assignments import add_role_assignment
from .bulk import seed_registrations
from .faults import FaultInjector, RequestLog
from .graph import service_principal_from
from .seed import add_tenant, describe, grant_app_roles
from .state import World

ADMIN_HEADER = "x-emulator-admin-key"


class AdminApi:
    def __init__(
        self,
        world: World,
        seed: dict[str, Any],
        faults: FaultInjector,
        admin_key: str | None,
        requests: RequestLog | None = None,
    ) -> None:
        self.world = world
        self.seed = seed
        self.faults = faults
        self.admin_key = admin_key
        self.requests = requests or RequestLog()

    def routes(self) -> list[Route]:
        routes = [Route("/_emulator/health", self.health)]
        if self.admin_key is None:
            return routes
        guarded: list[tuple[str, Callable[[Request], Awaitable[JSONResponse]], list[str]]] = [
            ("/_emulator/state", self.state, ["GET"]),
            ("/_emulator/tenants", self.create_tenant, ["POST"]),
            ("/_emulator/tenants/{tenant}/app-management-policy", self.set_policy, ["PUT"]),
            (
                "/_emulator/tenants/{tenant}/applications/{app_id}/app-management-policy",
                self.app_policy,
                ["PUT", "DELETE"],
            ),
            ("/_emulator/tenants/{tenant}/consent", self.consent, ["POST"]),
            ("/_emulator/tenants/{tenant}/directory-roles", self.directory_roles, ["POST", "DELETE"]),
            ("/_emulator/registrations", self.registrations, ["POST"]),
            ("/_emulator/requests", self.request_log, ["GET", "DELETE"]),
            ("/_emulator/faults", self.faults_endpoint, ["GET", "PUT", "DELETE"]),
            ("/_emulator/clock", self.clock, ["GET", "POST"]),
            ("/_emulator/vault/role-assignments", self.vault_role, ["PUT"]),
            ("/_emulator/workspaces", self.workspaces, ["POST"]),
            ("/_emulator/roleAssignments", self.role_assignments, ["GET", "POST"]),
            ("/_emulator/eventgrid/events", self.topic_events, ["GET", "DELETE"]),
            ("/_emulator/eventgrid/senders", self.topic_senders, ["PUT"]),
        ]
        routes += [Route(path, self._guard(handler), methods=methods) for path, handler, methods in guarded]
        return routes

    def _guard(
        self, handler: Callable[[Request], Awaitable[JSONResponse]]
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def guarded(request: Request) -> JSONResponse:
            presented = request.headers.get(ADMIN_HEADER, "")
            if not self.admin_key or not hmac.compare_digest(presented, self.admin_key):
                return JSONResponse({"error": "admin key missing or wrong"}, status_code=401)
            try:
                return await handler(request)
            except (ValueError, KeyError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        return guarded

    async def health(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def state(self, request: Request) -> JSONResponse:
        return JSONResponse(describe(self.world))

    async def create_tenant(self, request: Request) -> JSONResponse:
        spec = await _json(request)
        spec.setdefault("resourceApps", ["graph"])
        tenant = add_tenant(self.world, self.seed, spec)
        return JSONResponse({"id": tenant.id, "displayName": tenant.display_name}, status_code=201)

    async def set_policy(self, request: Request) -> JSONResponse:
        tenant = self._tenant(request)
        policy = await _json(request)
        tenant.app_management_policy.update(policy)
        self.world.touch()
        return JSONResponse(tenant.app_management_policy)

    async def app_policy(self, request: Request) -> JSONResponse:
        """Assign an appManagementPolicy to one application (by appId), or take it off (DELETE).

        Body: {"id"?, "displayName"?, "isEnabled": true, "restrictions": {"passwordCredentials": [...],
        "keyCredentials": [...]}}. While assigned and enabled it overrides the tenant default for that app
        (https://learn.microsoft.com/graph/api/resources/appmanagementpolicy)."""
        tenant = self._tenant(request)
        app = tenant.application_by_app_id(request.path_params["app_id"])
        if app is None:
            raise ValueError(f"no application with appId {request.path_params['app_id']} in {tenant.id}")
        if request.method == "DELETE":
            tenant.app_policies.pop(app["id"], None)
            self.world.touch()
            return JSONResponse({})
        policy = await _json(request)
        restrictions = policy.get("restrictions") or {}
        if not isinstance(restrictions, dict):
            raise ValueError("restrictions must be an object")
        assigned = {
            "id": str(policy.get("id") or uuid.uuid4()),
            "displayName": policy.get("displayName", "app policy"),
            "description": policy.get("description"),
            "isEnabled": bool(policy.get("isEnabled", True)),
            "restrictions": {
                "passwordCredentials": list(restrictions.get("passwordCredentials") or []),
                "keyCredentials": list(restrictions.get("keyCredentials") or []),
            },
        }
        tenant.app_policies[app["id"]] = assigned
        self.world.touch()
        return JSONResponse(assigned)

    async def consent(self, request: Request) -> JSONResponse:
        """Admin consent by a customer admin: the app's service principal plus granted app roles.

        Body: {"appId": "...", "roles": {"<resource appId>": ["Role.Value", ...]}}
        """
        tenant = self._tenant(request)
        body = await _json(request)
        app_id = body["appId"]
        sp = tenant.service_principal_by_app_id(app_id)
        if sp is None:
            application = next(
                (a for t in self.world.tenants.values() for a in [t.application_by_app_id(app_id)] if a), None
            )
            if application is None:
                raise ValueError(f"no application with appId {app_id}")
            sp = service_principal_from(self.world, tenant, application, {})
        for resource_app_id, values in body.get("roles", {}).items():
            grant_app_roles(self.world, tenant, sp["id"], resource_app_id, list(values))
        self.world.touch()
        return JSONResponse({"servicePrincipalId": sp["id"]}, status_code=201)

    async def directory_roles(self, request: Request) -> JSONResponse:
        """A customer's admin assigns (POST) or removes (DELETE) an Entra role, by template id, to an app's service
        principal in the tenant, as Roles and administrators does; its tokens carry the role in `wids`.

        Body: {"appId": "...", "roleTemplateId": "<GUID>"}
        """
        tenant = self._tenant(request)
        body = await _json(request)
        sp = tenant.service_principal_by_app_id(body["appId"])
        if sp is None:
            raise ValueError(f"no service principal for appId {body['appId']} in the tenant")
        template_id = str(uuid.UUID(body["roleTemplateId"]))
        held = tenant.directory_roles.setdefault(sp["id"], [])
        if request.method == "POST" and template_id not in held:
            held.append(template_id)
        elif request.method == "DELETE" and template_id in held:
            held.remove(template_id)
        self.world.touch()
        return JSONResponse({"servicePrincipalId": sp["id"], "roleTemplateIds": list(held)})

    async def topic_events(self, request: Request) -> JSONResponse:
        """The events the Event Grid topic accepted, in order (DELETE: forget them)."""
        if request.method == "DELETE":
            self.world.topic.received.clear()
        return JSONResponse({"value": list(self.world.topic.received)})

    async def topic_senders(self, request: Request) -> JSONResponse:
        """Who holds EventGrid Data Sender on the topic. Body: {"objectIds": [...]} (null: the default identity)."""
        ids = (await _json(request)).get("objectIds")
        self.world.topic.senders = None if ids is None else {str(i) for i in ids}
        return JSONResponse({"objectIds": sorted(self.world.topic.senders or [])})

    async def registrations(self, request: Request) -> JSONResponse:
        """Bulk: registrations as the product leaves them after onboarding, some due, some retiring (emulator/bulk.py)."""
        result = seed_registrations(self.world, await _json(request))
        return JSONResponse(result, status_code=201)

    async def request_log(self, request: Request) -> JSONResponse:
        """Requests each service received since the last DELETE, by method and by second."""
        if request.method == "DELETE":
            self.requests.reset()
        return JSONResponse(self.requests.describe())

    async def faults_endpoint(self, request: Request) -> JSONResponse:
        if request.method == "PUT":
            body = await _json(request)
            if "replication_lag_ms" in body:
                self.world.replication.configure(body["replication_lag_ms"])
            self.faults.configure(body.get("rules", []), seed=body.get("seed"))
        elif request.method == "DELETE":
            self.faults.configure([], seed=0)
            self.world.replication.configure(dict.fromkeys(self.world.replication.KINDS, 0))
        return JSONResponse(
            {
                "rules": [r.describe() for r in self.faults.rules],
                "injected": self.faults.injected,
                "replication_lag_ms": self.world.replication.lag_ms,
            }
        )

    async def clock(self, request: Request) -> JSONResponse:
        if request.method == "POST":
            body = await _json(request)
            self.world.clock.advance(float(body["advance_seconds"]))
            self.world.touch()
        return JSONResponse(
            {"now": self.world.clock.now().isoformat(), "offset_seconds": self.world.clock.offset.total_seconds()}
        )

    async def vault_role(self, request: Request) -> JSONResponse:
        body = await _json(request)
        principal_id, role = body["principalId"], body.get("role")
        if role is None:
            self.world.vault.role_assignments.pop(principal_id, None)
        else:
            self.world.vault.role_assignments[principal_id] = role
        self.world.touch()
        return JSONResponse(self.world.vault.role_assignments)

    async def workspaces(self, request: Request) -> JSONResponse:
        """A Log Analytics workspace: {tenantId, subscriptionId, resourceGroup, name, location?} (emulator/arm.py)."""
        workspace = add_workspace(self.world, await _json(request))
        return JSONResponse({k: workspace[k] for k in ("id", "customerId", "name")}, status_code=201)

    async def role_assignments(self, request: Request) -> JSONResponse:
        """Azure role assignments as the customer's admin makes them in the portal, or listed (?scope= exact).

        Body: {scope, roleDefinitionId (GUID or id), principalId, principalType, condition?, name?}. A condition
        outside the documented delegation subset is refused (emulator/arm_conditions.py)."""
        if request.method == "GET":
            scope = (request.query_params.get("scope") or "").rstrip("/").lower()
            listed = [
                a
                for a in self.world.arm.role_assignments.values()
                if not scope or a["properties"]["scope"].lower() == scope
            ]
            return JSONResponse({"value": listed})
        body = await _json(request)
        assignment = add_role_assignment(
            self.world,
            body["scope"],
            body["roleDefinitionId"],
            body["principalId"],
            body.get("principalType", "ServicePrincipal"),
            name=body.get("name"),
            condition=body.get("condition"),
            conditionVersion=body.get("conditionVersion"),
            description=body.get("description"),
        )
        return JSONResponse(assignment, status_code=201)

    def _tenant(self, request: Request) -> Any:
        tenant = self.world.tenant(request.path_params["tenant"])
        if tenant is None:
            raise ValueError(f"unknown tenant {request.path_params['tenant']}")
        return tenant


async def _json(request: Request) -> dict[str, Any]:
    body = json.loads(await request.body() or b"{}")
    if not isinstance(body, dict):
        raise ValueError("body must be a JSON object")
    return body
