"""The Log Analytics query API (`POST /v1/workspaces/{customerId}/query`), authorized as the real one is.

A query needs a token for https://api.loganalytics.io whose `roles` hold Data.Read (app-only) and a
caller whose Azure RBAC, once propagated, allows querying the workspace. The stand-in runs no KQL:
`print a=1, b='x'` is answered with its values and any other query with an empty PrimaryResult, in the
response shape of https://learn.microsoft.com/azure/azure-monitor/logs/api/response-format. Errors are
those of https://learn.microsoft.com/azure/azure-monitor/logs/api/errors (emulator/FIDELITY.md, "Log
Analytics query API").
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import arm_rbac
from .clouds import LOG_ANALYTICS_APP_ID
from .errors import ServiceError
from .state import World
from .tokens import Caller, TokenError, TokenService

DATA_READ = "Data.Read"
# The action the Sentinel roles grant by name and Log Analytics Reader through */read (built-in roles pages).
QUERY_ACTION = "Microsoft.OperationalInsights/workspaces/query/read"
PRINT = re.compile(r"^\s*print\s+(?P<items>.+?)\s*;?\s*$", re.IGNORECASE | re.DOTALL)
ITEM = re.compile(r"^\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>-?\d+|'[^']*'|\"[^\"]*\")\s*$")


def la_error(status: int, code: str, message: str, inner: dict[str, str] | None = None) -> ServiceError:
    error: dict[str, Any] = {"message": message, "code": code, "correlationId": str(uuid.uuid4())}
    if inner:
        error["innererror"] = inner
    return ServiceError(JSONResponse({"error": error}, status_code=status))


def insufficient_access(inner: dict[str, str] | None = None) -> ServiceError:
    return la_error(
        403,
        "InsufficientAccessError",
        "The provided credentials have insufficient access to perform the requested operation",
        inner,
    )


class LogAnalyticsService:
    def __init__(self, world: World, tokens: TokenService) -> None:
        self.world = world
        self.tokens = tokens

    def routes(self) -> list[Route]:
        return [Route("/v1/workspaces/{workspace_id}/query", self.query, methods=["POST"])]

    def _caller(self, request: Request) -> Caller:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise la_error(401, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        try:
            audience = self.tokens.posture.log_analytics
            return self.tokens.verify(header[7:].strip(), {audience, f"{audience}/", LOG_ANALYTICS_APP_ID})
        except TokenError as exc:
            # The errors page answers an invalid token with 403 InvalidAuthenticationToken; expired and
            # wrong-audience tokens are not on it and get the same answer (FIDELITY.md, unknown).
            raise la_error(403, "InvalidAuthenticationToken", "The access token is invalid.") from exc

    async def query(self, request: Request) -> JSONResponse:
        caller = self._caller(request)
        workspace = self.world.arm.workspace_by_customer_id(request.path_params["workspace_id"])
        if workspace is None:
            raise la_error(
                404, "WorkspaceNotFoundError", f"Workspace {request.path_params['workspace_id']} could not be found"
            )
        if DATA_READ not in caller.roles:
            # "Client credentials to direct API" on the errors page: an app without the permission.
            raise insufficient_access(
                {
                    "code": "UnauthorizedClient",
                    "message": "The service principal does not have sufficient permissions to access this resource: "
                    f"{workspace['customerId']}",
                }
            )
        if caller.tenant_id != workspace["tenantId"]:
            raise insufficient_access()
        if arm_rbac.decide(self.world, caller.object_id, QUERY_ACTION, workspace["id"]) != "granted":
            # "Insufficient permissions": also what a caller sees while a new role assignment propagates.
            raise insufficient_access()
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            raise la_error(
                400,
                "BadArgumentError",
                "The request had some invalid properties",
                {"code": "QueryValidationError", "message": "The query is missing"},
            )
        return JSONResponse({"tables": [_primary_result(body["query"])]})


def _primary_result(query: str) -> dict[str, Any]:
    columns: list[dict[str, str]] = []
    row: list[Any] = []
    match = PRINT.match(query)
    items = [ITEM.match(part) for part in match["items"].split(",")] if match else []
    if items and all(items):
        for item in items:
            assert item is not None
            value = item["value"]
            if value[0] in "'\"":
                columns.append({"name": item["name"], "type": "string"})
                row.append(value[1:-1])
            else:
                columns.append({"name": item["name"], "type": "long"})
                row.append(int(value))
    return {"name": "PrimaryResult", "columns": columns, "rows": [row] if columns else []}
