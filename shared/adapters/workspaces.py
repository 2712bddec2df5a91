"""Log Analytics workspaces through Azure Resource Manager and the Log Analytics query API: the only module speaking either.

ARM is called through azure-core's pipeline (no azure-mgmt package: four REST calls do not justify one), as
this service in the workspace's tenant (Identity.management_credential). Its answers are matched on status
and ARM's `error.code` (common-types ErrorResponse), never on a message; every failure carries ARM's
`x-ms-request-id` and `x-ms-correlation-request-id` (Azure/azure-resource-manager-rpc,
v1.0/common-api-details.md). Queries go through azure-monitor-query's LogsQueryClient signed in as the app.
The REST specs cited are in Azure/azure-rest-api-specs; the stand-in's ledger is emulator/FIDELITY.md (A, L rows).
"""

from __future__ import annotations

import functools
import logging
import re
from typing import TYPE_CHECKING, Any, NoReturn

from azure.core import AsyncPipelineClient
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import (
    AsyncBearerTokenCredentialPolicy,
    AsyncRetryPolicy,
    ContentDecodePolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    RequestIdPolicy,
    UserAgentPolicy,
)
from azure.core.rest import AsyncHttpResponse, HttpRequest

from shared.adapters.azure_core_errors import CORRELATION_REQUEST_ID, request_ids
from shared.adapters.entra_answers import aadsts, token_refusal
from shared.adapters.identity import Identity, TenantClients
from shared.adapters.service_token import ServiceToken
from shared.adapters.tls import SharedTransport
from shared.adapters.token_check import app_credential
from shared.domain.errors import (
    OnboardingError,
    UpstreamError,
    UpstreamUnavailable,
    WorkspaceAccessMissing,
    WorkspaceNotFound,
    request_ids_text,
)
from shared.domain.model import ClientCredential, HeldAssignment, Workspace
from shared.domain.ports import NotReplicatedYet
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

logger = logging.getLogger(__name__)

# Workspaces_Get: specification/operationalinsights/resource-manager/Microsoft.OperationalInsights/stable/
# 2022-10-01/Workspaces.json. Role assignments and permissions: specification/authorization/resource-manager/
# Microsoft.Authorization/stable/2022-04-01/authorization-RoleAssignmentsCalls.json and
# authorization-RoleDefinitionsCalls.json (Permissions_ListForResource).
WORKSPACES_API = "2022-10-01"
AUTHORIZATION_API = "2022-04-01"
ASSIGN_ACTION = "Microsoft.Authorization/roleAssignments/write"
# The error codes ARM answers a role assignment PUT with, as the Azure RBAC troubleshooting page names them
# (https://learn.microsoft.com/azure/role-based-access-control/troubleshooting): the same principal, role and
# scope under another name; a principal its directory replica does not know yet.
ASSIGNMENT_EXISTS = "RoleAssignmentExists"
PRINCIPAL_NOT_FOUND = "PrincipalNotFound"
# What the Log Analytics query API answers a caller without (effective) access: 403 InsufficientAccessError
# (https://learn.microsoft.com/azure/azure-monitor/logs/api/errors, "Insufficient permissions"). New Azure
# RBAC assignments take minutes to reach it (same page), so this means "not yet" as much as "no".
INSUFFICIENT_ACCESS = "InsufficientAccessError"
# The cheapest query that proves access: no table read, no timespan.
PROOF_QUERY = "print proof=1"
SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[0-9A-Fa-f-]{36})(?:/|$)", re.IGNORECASE)
# A scope or resource id this module puts into a URL path: ARM's shape, nothing that would change the URL.
ARM_ID = re.compile(r"^/subscriptions/[^?#\s]+$", re.IGNORECASE)
GUID = re.compile(r"^[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}$")


@functools.lru_cache(maxsize=64)
def _action_pattern(action: str) -> re.Pattern[str]:
    # Actions are case-insensitive strings in which `*` matches any run of characters, `/` included
    # ("*/read", "Microsoft.Authorization/*"):
    # https://learn.microsoft.com/azure/role-based-access-control/role-definitions#actions-format
    return re.compile("^" + re.escape(action).replace(r"\*", ".*") + "$", re.IGNORECASE)


def permits(entry: dict[str, Any], action: str) -> bool:
    """Whether one role's permissions (an item of the permissions list) allow `action`: its actions minus its
    notActions. NotActions are not a deny: they only subtract from the same role's actions, so another role
    may still grant the action (https://learn.microsoft.com/azure/role-based-access-control/role-definitions#notactions)."""
    actions, not_actions = entry.get("actions") or [], entry.get("notActions") or []
    return any(_action_pattern(str(a)).match(action) for a in actions) and not any(
        _action_pattern(str(n)).match(action) for n in not_actions
    )


def _arm_id(value: str) -> str:
    value = value.rstrip("/")
    if not ARM_ID.match(value) or "/../" in value + "/" or "/./" in value + "/":
        raise WorkspaceNotFound("Not an Azure resource id under a subscription", resourceId=value[:300])
    return value


def _role_guid(role_definition_id: str) -> str:
    return role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower()


class ArmWorkspaces:
    """`shared.domain.ports.Workspaces` on Azure Resource Manager and the Log Analytics query API."""

    def __init__(self, settings: Settings, identity: Identity) -> None:
        self._settings = settings
        self._identity = identity
        # One connection pool for every ARM client, token request and query: ARM is one host whatever the
        # tenant (the token says which), and each query's credential is new (shared/adapters/tls.py).
        self._transport: SharedTransport | None = None
        # One pipeline per kept tenant: its bearer policy caches the tenant's ARM token.
        self._clients = TenantClients(identity, self._pipeline)

    # --- Azure Resource Manager ---

    async def workspace(self, tenant_id: str, resource_id: str) -> Workspace:
        resource_id = _arm_id(resource_id)
        response = await self._send(tenant_id, "GET", resource_id, WORKSPACES_API, "reading the workspace")
        if response.status_code != 200:
            self._fail(response, "reading the workspace", tenant_id, resource_id)
        body = response.json()
        try:
            return Workspace(str(body["id"]), str(body["name"]), str(body["properties"]["customerId"]))
        except (KeyError, TypeError) as error:
            raise UpstreamError(
                "ARM answered a workspace without its id, name or customerId", "arm", 200, None
            ) from error

    async def may_assign_roles(self, tenant_id: str, resource_id: str) -> bool:
        resource_id = _arm_id(resource_id)
        path = f"{resource_id}/providers/Microsoft.Authorization/permissions"
        entries = await self._list(tenant_id, path, {}, "listing this service's permissions", resource_id)
        return any(permits(entry, ASSIGN_ACTION) for entry in entries)

    async def held_assignments(self, tenant_id: str, scope: str, principal_id: str) -> list[HeldAssignment]:
        """RoleAssignments_ListForScope with `principalId eq`, which answers assignments at, above and below the
        scope (https://learn.microsoft.com/rest/api/authorization/role-assignments/list-for-scope): those below
        are left out. Each carries `condition` (RoleAssignmentProperties, 2022-04-01)."""
        scope = _arm_id(scope)
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
        params = {"$filter": f"principalId eq '{principal_id}'"}
        held = []
        for assignment in await self._list(tenant_id, path, params, "listing this service's role assignments", scope):
            props = assignment.get("properties") or {}
            at = str(props.get("scope", "")).rstrip("/").lower()
            # The list's "at, above or below": only those below are left out. Above includes a management group's
            # scope (/providers/Microsoft.Management/...), which no string prefix of the workspace's shows.
            if not at.startswith(scope.lower() + "/"):
                condition = props.get("condition")
                held.append(
                    HeldAssignment(
                        at or "/",
                        _role_guid(str(props.get("roleDefinitionId", ""))),
                        str(condition) if condition else None,
                    )
                )
        return held

    async def assign_role(
        self, tenant_id: str, scope: str, name: str, role_definition_id: str, principal_id: str
    ) -> str:
        scope = _arm_id(scope)
        subscription = SUBSCRIPTION.match(scope)
        if subscription is None or not GUID.match(name) or not GUID.match(role_definition_id):
            raise WorkspaceNotFound("Not a role assignment ARM can create", resourceId=scope[:300])
        role = role_definition_id.lower()
        body = {
            "properties": {
                # Subscription-scoped, as ARM returns it (RoleAssignments_CreateForResource example).
                "roleDefinitionId": (
                    f"/subscriptions/{subscription['sub']}/providers/Microsoft.Authorization/roleDefinitions/{role}"
                ),
                "principalId": principal_id,
                # Set so a service principal created moments ago is found despite Entra's replication delay
                # (troubleshooting page, "Assigning a role to a new principal sometimes fails", solution 1).
                "principalType": "ServicePrincipal",
            }
        }
        doing = "assigning a role"
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
        response = await self._send(tenant_id, "PUT", path, AUTHORIZATION_API, doing, body)
        if response.status_code in (200, 201):  # the spec declares both for the PUT
            return str(response.json()["id"])
        error = _error(response)
        code = _code(error)
        if response.status_code == 409 and code == ASSIGNMENT_EXISTS:
            existing = await self._existing(tenant_id, scope, role, principal_id)
            if existing is not None:
                return existing
        if response.status_code == 400 and code == PRINCIPAL_NOT_FOUND:
            raise NotReplicatedYet("the service principal (Azure RBAC)", PRINCIPAL_NOT_FOUND) from error
        raise _translate(error, doing, tenant_id, scope) from error

    async def role_assigned(self, tenant_id: str, assignment_id: str) -> bool:
        assignment_id = _arm_id(assignment_id)
        doing = "reading a role assignment"
        response = await self._send(tenant_id, "GET", assignment_id, AUTHORIZATION_API, doing)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        self._fail(response, doing, tenant_id, assignment_id)

    async def remove_role_assignment(self, tenant_id: str, assignment_id: str) -> bool:
        assignment_id = _arm_id(assignment_id)
        doing = "deleting a role assignment"
        response = await self._send(tenant_id, "DELETE", assignment_id, AUTHORIZATION_API, doing)
        if response.status_code == 200:  # RoleAssignments_Delete: 200 with the deleted assignment
            return True
        if response.status_code in (204, 404):  # 204: "already deleted or does not exist"
            return False
        if response.status_code == 403 and not await self.role_assigned(tenant_id, assignment_id):
            # A delegate whose condition names the roles it may delete is judged on the assignment's own
            # attributes; one that is gone has none, and whether ARM then refuses is unknown
            # (emulator/FIDELITY.md A17): gone is gone.
            return False
        self._fail(response, doing, tenant_id, assignment_id)

    async def _existing(self, tenant_id: str, scope: str, role: str, principal_id: str) -> str | None:
        """The id of the principal's assignment of `role` at exactly `scope` (RoleAssignments_ListForScope with
        `principalId eq`: assignments at, above or below the scope,
        https://learn.microsoft.com/rest/api/authorization/role-assignments/list-for-scope)."""
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
        params = {"$filter": f"principalId eq '{principal_id}'"}
        for assignment in await self._list(tenant_id, path, params, "finding an existing role assignment", scope):
            props = assignment.get("properties") or {}
            if (
                str(props.get("scope", "")).rstrip("/").lower() == scope.lower()
                and _role_guid(str(props.get("roleDefinitionId", ""))) == role
                and str(props.get("principalId", "")).lower() == principal_id.lower()
            ):
                return str(assignment["id"])
        return None

    async def _list(
        self, tenant_id: str, path: str, params: dict[str, str], doing: str, resource: str
    ) -> list[dict[str, Any]]:
        """Every item of an ARM list, following `nextLink` (both lists are x-ms-pageable in their specs) only
        back to ARM itself: this service's token never goes to another host."""
        items: list[dict[str, Any]] = []
        response = await self._send(tenant_id, "GET", path, AUTHORIZATION_API, doing, params=params)
        while True:
            if response.status_code != 200:
                self._fail(response, doing, tenant_id, resource)
            page = response.json()
            items.extend(item for item in page.get("value") or [] if isinstance(item, dict))
            next_link = page.get("nextLink")
            if not next_link:
                return items
            if not str(next_link).startswith(self._settings.resource_manager_url + "/"):
                raise UpstreamError(f"ARM's next page is on another host while {doing}", "arm", 200, None)
            response = await self._request(tenant_id, HttpRequest("GET", str(next_link)), doing)

    async def _send(
        self,
        tenant_id: str,
        method: str,
        path: str,
        api_version: str,
        doing: str,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> AsyncHttpResponse:
        url = self._settings.resource_manager_url + path
        request = HttpRequest(method, url, params={"api-version": api_version, **(params or {})}, json=body)
        return await self._request(tenant_id, request, doing)

    async def _request(self, tenant_id: str, request: HttpRequest, doing: str) -> AsyncHttpResponse:
        try:
            return await self._clients.get(tenant_id).send_request(request)  # the body is read (stream=False)
        except (ServiceRequestError, ServiceResponseError) as error:
            raise _no_answer(error, "arm", doing, tenant_id) from error

    def _fail(self, response: AsyncHttpResponse, doing: str, tenant_id: str, resource: str) -> NoReturn:
        error = _error(response)
        raise _translate(error, doing, tenant_id, resource) from error

    def _pipeline(
        self, credential: AsyncTokenCredential, tenant_id: str
    ) -> AsyncPipelineClient[HttpRequest, AsyncHttpResponse]:
        token = ServiceToken(credential, tenant_id, "the token Azure Resource Manager needs")
        # azure-core's standard policies, in the order its generated management clients use.
        policies: list[Any] = [
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="tenant-onboarding"),
            RequestIdPolicy(),
            AsyncRetryPolicy(retry_total=3),
            AsyncBearerTokenCredentialPolicy(token, self._settings.resource_manager_scope),
            ContentDecodePolicy(),
            DistributedTracingPolicy(),
            HttpLoggingPolicy(),
        ]
        return AsyncPipelineClient(self._settings.resource_manager_url, policies=policies, **self._shared().lend())

    def _shared(self) -> SharedTransport:
        if self._transport is None:
            self._transport = SharedTransport(self._settings.tls_ca_bundle)
        return self._transport

    # --- Log Analytics query API ---

    async def query_allowed(
        self, tenant_id: str, customer_id: str, client_id: str, credential: ClientCredential
    ) -> bool:
        from azure.monitor.query.aio import LogsQueryClient  # imported here: only Sentinel onboarding needs it

        transport = self._shared()
        app, replication = app_credential(self._settings, tenant_id, client_id, credential, transport.lend())
        client = LogsQueryClient(
            app,
            endpoint=f"{self._settings.log_analytics_url}/v1",
            # The SDK derives the token audience from the endpoint unless told (azure-monitor-query 2.0).
            audience=self._settings.log_analytics_audience,
            **transport.lend(),
        )
        doing = "querying the workspace"
        try:
            # The app's token first, on its own: azure-monitor-query turns every failure inside a query,
            # the credential's ClientAuthenticationError included, into a bare HttpResponseError
            # (azure/monitor/query/_helpers.py, process_error), so Entra's refusal is read here. The
            # credential caches the token, and the query's bearer policy takes it from there.
            try:
                await app.get_token(f"{self._settings.log_analytics_audience}/.default")
            except ClientAuthenticationError as error:
                code = aadsts(error)
                if code in replication:  # the app or its credential not replicated yet: not allowed yet
                    return False
                raise token_refusal(error, tenant_id, "the app's token for the Log Analytics API") from error
            await client.query_workspace(customer_id, PROOF_QUERY, timespan=None)
            return True
        except HttpResponseError as error:
            if error.status_code == 403 and _code(error) == INSUFFICIENT_ACCESS:
                return False
            raise _translate(error, doing, tenant_id, customer_id, "loganalytics") from error
        except (ServiceRequestError, ServiceResponseError) as error:
            raise _no_answer(error, "loganalytics", doing, tenant_id) from error
        finally:
            await client.close()
            await app.close()

    async def close(self) -> None:
        self._clients.clear()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None


def _error(response: AsyncHttpResponse) -> HttpResponseError:
    """azure-core's exception for a failed answer: it parses ARM's `{"error": {"code", "message"}}`."""
    try:
        response.raise_for_status()
    except HttpResponseError as error:
        return error
    return HttpResponseError(message=f"unexpected status {response.status_code}", response=response)


def _code(error: HttpResponseError) -> str | None:
    return error.error.code if error.error is not None else None


def _translate(
    error: HttpResponseError, doing: str, tenant_id: str, resource: str, service: str = "arm"
) -> OnboardingError:
    """The project's error for a failed answer, with its request ids (logged here, once). The caller chains
    `error`: azure-core's message is the status and the service's error code and message, which name
    resources at most, never a credential."""
    ids = request_ids(error, (CORRELATION_REQUEST_ID,))
    status, code = error.status_code, _code(error)
    logger.info("%s answered %s %s while %s in tenant %s (%s)", service, status, code, doing, tenant_id, request_ids_text(ids))  # fmt: skip
    if status == 404:
        return WorkspaceNotFound(
            f"{service} found no such workspace or resource while {doing}",
            resourceId=resource, upstreamCode=code, upstream_request_ids=ids,
        )  # fmt: skip
    if status in (401, 403):
        return WorkspaceAccessMissing(
            f"{service} refused this service while {doing}",
            resourceId=resource, upstreamCode=code, upstream_request_ids=ids,
        )  # fmt: skip
    if status is not None and (status == 429 or status >= 500):
        retry_after = (getattr(error.response, "headers", None) or {}).get("Retry-After")
        return UpstreamUnavailable(
            f"{service} is throttling or unavailable while {doing}", service, status, code,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            tenantId=tenant_id, upstream_request_ids=ids,
        )  # fmt: skip
    return UpstreamError(
        f"{service} failed while {doing}", service, status, code, tenantId=tenant_id, upstream_request_ids=ids
    )


def _no_answer(error: AzureError, service: str, doing: str, tenant_id: str) -> UpstreamUnavailable:
    ids = request_ids(error, (CORRELATION_REQUEST_ID,))
    logger.info("%s did not answer while %s in tenant %s: %s (%s)", service, doing, tenant_id, type(error).__name__, request_ids_text(ids))  # fmt: skip
    return UpstreamUnavailable(
        f"{service} did not answer while {doing}", service, None, type(error).__name__,
        tenantId=tenant_id, upstream_request_ids=ids,
    )  # fmt: skip
