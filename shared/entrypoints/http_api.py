"""The HTTP API the vendor's backend calls: parse and validate input, call one use case, map the result.

No Graph or Key Vault here. Every input is validated against an allow-list before any use case
runs, so an invalid request creates nothing; errors are problem+json with a stable type.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import azure.functions as func

from shared.bootstrap import services
from shared.domain import validation
from shared.domain.errors import InvalidRequest
from shared.domain.model import CredentialType
from shared.entrypoints.http_common import (
    flag_param,
    integration_param,
    json_body,
    json_response,
    problem_responses,
    request_path,
    tenant_id_param,
)
from shared.entrypoints.openapi import openapi_document
from shared.entrypoints.presenters import consent_json, fleet_json, offboard_json, onboard_json, registration_json
from shared.usecases.fleet import FleetQuery, FleetState
from shared.usecases.onboarding import OnboardRequest, Outcome
from shared.usecases.workspace_access import WorkspaceRequest

bp = func.Blueprint()  # type: ignore[no-untyped-call]

BODY_FIELDS = {
    "displayName", "secretLifetimeDays", "notes", "credentialType", "certificate", "certificateProof", "addOns",
    "workspace",
}  # fmt: skip
STATUS_BY_OUTCOME = {Outcome.CREATED: 201, Outcome.UPDATED: 200, Outcome.COMPLETE: 200, Outcome.PENDING: 202}


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def onboard_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Create or converge one integration's app registration in one tenant (idempotent)."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    body = json_body(req, BODY_FIELDS)
    request = OnboardRequest(
        tenant_id=tenant_id,
        integration=integration,
        display_name=_text(body, "displayName", 120),
        secret_lifetime_days=_lifetime(body),
        notes=_text(body, "notes", 500),
        credential_type=_credential_type(body),
        certificate=_checked(body, "certificate", validation.certificate_text),
        certificate_proof=_checked(body, "certificateProof", validation.client_assertion),
        add_ons=_add_ons(body),
        workspace=_workspace(body),
    )
    result = await services().onboarding.onboard(request)
    headers = {}
    if result.outcome is Outcome.PENDING:
        headers["Retry-After"] = str(result.retry_after)
    if result.outcome is Outcome.CREATED:
        headers["Location"] = request_path(req)
    return json_response(onboard_json(result), STATUS_BY_OUTCOME[result.outcome], headers)


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def get_integration(req: func.HttpRequest) -> func.HttpResponse:
    """The live state of one integration in one tenant, read back from Entra and Key Vault."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    return json_response(registration_json(await services().status.status(tenant_id, integration)), 200)


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def offboard_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Remove the app registration and soft-delete its secrets; idempotent (a second DELETE changes nothing)."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    result = await services().offboarding.offboard(
        tenant_id,
        integration,
        purge_application=flag_param(req, "purgeApplication"),
        purge_secrets=flag_param(req, "purgeSecrets"),
    )
    return json_response(offboard_json(result), 200)


@bp.route(route="tenants/{tenantId}/consent", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def tenant_consent(req: func.HttpRequest) -> func.HttpResponse:
    """Whether this service can manage apps in the tenant, and the admin-consent URL when it cannot."""
    tenant_id = tenant_id_param(req)
    return json_response(consent_json(await services().tenant_consent.status(tenant_id)), 200)


@bp.route(route="registrations", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def list_registrations(req: func.HttpRequest) -> func.HttpResponse:
    """The fleet: every registration this service manages, from Key Vault's records alone, a page at a time."""
    return json_response(fleet_json(await services().fleet.page(fleet_query(req))), 200)


def fleet_query(req: func.HttpRequest) -> FleetQuery:
    """`state` (comma-separated states), `tenantId`, `expiringBefore` (ISO 8601 with a zone) and
    `continuationToken`; nothing else."""
    unknown = sorted(set(req.params) - {"state", "tenantId", "expiringBefore", "continuationToken", "code"})
    if unknown:
        raise InvalidRequest(f"Unknown query parameters {unknown}.", field=unknown[0])
    states: set[FleetState] = set()
    for raw in (req.params.get("state") or "").split(","):
        if not raw:
            continue
        try:
            states.add(FleetState(raw))
        except ValueError:
            allowed = ", ".join(s.value for s in FleetState)
            raise InvalidRequest(f"state must be one or more of {allowed}.", field="state") from None
    tenant = req.params.get("tenantId")
    if tenant is not None:
        try:
            tenant = validation.tenant_id(tenant)
        except validation.InvalidValue as problem:
            raise InvalidRequest(f"tenantId {problem}.", field="tenantId") from None
    before = req.params.get("expiringBefore")
    expiring_before = None
    if before is not None:
        try:
            # A `+` sent unencoded in a query string arrives as a space; in a moment it can only be the zone's sign.
            expiring_before = datetime.fromisoformat(before.replace(" ", "+"))
        except ValueError:
            expiring_before = None
        if expiring_before is None or expiring_before.tzinfo is None:
            raise InvalidRequest("expiringBefore must be an ISO 8601 moment with its zone.", field="expiringBefore")
    return FleetQuery(frozenset(states), tenant, expiring_before, req.params.get("continuationToken"))


@bp.route(route="integrations", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def list_integrations(req: func.HttpRequest) -> func.HttpResponse:
    """The catalog: which integrations exist and which permissions each gets."""
    return json_response(services().catalog.to_json(), 200)


@bp.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def openapi(req: func.HttpRequest) -> func.HttpResponse:
    """The OpenAPI 3.1 document of this API, for generating the caller's client."""
    return json_response(openapi_document(), 200)


# --- the PUT body's fields ---


def _text(body: dict[str, Any], name: str, max_length: int) -> str | None:
    if body.get(name) is None:
        return None
    try:
        return validation.text(body[name], max_length)
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"{name} {problem}.", field=name) from None


def _checked(body: dict[str, Any], name: str, rule: Callable[[object], str]) -> str | None:
    if body.get(name) is None:
        return None
    try:
        return rule(body[name])
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"{name} {problem}.", field=name) from None


def _credential_type(body: dict[str, Any]) -> CredentialType | None:
    if body.get("credentialType") is None:
        return None
    try:
        return validation.credential_type(body["credentialType"])
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"credentialType {problem}.", field="credentialType") from None


def _workspace(body: dict[str, Any]) -> WorkspaceRequest | None:
    """`{"resourceId": "...", "role": "reader"}`: the Sentinel connection's workspace, and the catalog's role id."""
    value = body.get("workspace")
    if value is None:
        return None
    if not isinstance(value, dict) or not set(value) <= {"resourceId", "role"} or "resourceId" not in value:
        raise InvalidRequest(
            'workspace must be {"resourceId": "...", "role": "..."} (role optional).', field="workspace"
        )
    try:
        resource_id = validation.workspace_resource_id(value["resourceId"])
        role = validation.catalog_id(value["role"]) if value.get("role") is not None else None
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"workspace {problem}.", field="workspace") from None
    return WorkspaceRequest(resource_id, role)


def _add_ons(body: dict[str, Any]) -> tuple[str, ...] | None:
    if body.get("addOns") is None:
        return None
    try:
        return validation.add_on_ids(body["addOns"])
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"addOns {problem}.", field="addOns") from None


def _lifetime(body: dict[str, Any]) -> int | None:
    if body.get("secretLifetimeDays") is None:
        return None
    try:
        return validation.lifetime_days(body["secretLifetimeDays"], services().settings.max_secret_lifetime_days)
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"secretLifetimeDays {problem}.", field="secretLifetimeDays") from None
