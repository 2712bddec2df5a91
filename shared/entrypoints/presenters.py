"""The HTTP API's JSON (and the CLI's `--json`, the same bodies): use cases' values shaped for callers.

Field names are camelCase, timestamps ISO 8601 UTC; the OpenAPI document (openapi.py) describes
each body, and a contract test holds the two together.
"""

from __future__ import annotations

from typing import Any

from shared.domain.registry import iso
from shared.usecases.fleet import FleetPage, FleetRow
from shared.usecases.offboarding import OffboardResult
from shared.usecases.onboarding import OnboardResult, Outcome
from shared.usecases.rotation import RotationResult
from shared.usecases.status import RegistrationState
from shared.usecases.sweep import SweepSummary
from shared.usecases.sweep_pass import InvocationReport
from shared.usecases.tenant_access import ConsentStatus


def registration_json(state: RegistrationState) -> dict[str, Any]:
    """The body of GET /api/tenants/{tenantId}/integrations/{integration}."""
    app, credential, references = state.application, state.credential, state.references
    return {
        "tenantId": state.tenant_id,
        "integration": state.integration,
        "uniqueName": state.unique_name,
        "application": {"objectId": app.object_id, "clientId": app.client_id, "displayName": app.display_name}
        if app
        else None,
        "servicePrincipalId": state.service_principal_id,
        "permissions": [
            {
                "resource": p.resource,
                "resourceAppId": p.resource_app_id,
                "permission": p.permission,
                "granted": p.granted,
                "addOn": p.add_on,  # null: the connection's base permissions
            }
            for p in state.permissions
        ],
        "addOns": list(state.add_ons),
        # Set on a registration of a profile kept for the registrations made with it: where to move it.
        "supersededBy": (
            {"integration": state.superseded_by[0], "addOns": list(state.superseded_by[1])}
            if state.superseded_by
            else None
        ),
        "credential": {
            "type": credential.type.value,
            "keyId": credential.key_id,
            "thumbprint": credential.thumbprint,
            **({"source": "vendor"} if credential.vendor_supplied else {}),
            "hint": credential.hint,
            "expires": iso(credential.expires) if credential.expires else None,
            "verified": credential.verified,
            "otherCredentialsOnApp": credential.other_credentials_on_app,
        },
        "keyVaultReferences": {
            "clientId": references.client_id,
            "tenantId": references.tenant_id,
            "clientSecret": references.client_secret,
            # Only on a registration with a certificate: a secret registration's body is as it always was.
            **({"clientCertificate": references.client_certificate} if references.client_certificate else {}),
            **({"vendorCertificate": references.vendor_certificate} if references.vendor_certificate else {}),
            **({"workspaceId": references.workspace_id} if references.workspace_id else {}),
            **({"workspaceName": references.workspace_name} if references.workspace_name else {}),
        },
        "drift": list(state.drift),
        "remainingSteps": list(state.remaining_steps),
        "workspace": (
            {
                "resourceId": state.workspace.resource_id,
                "name": state.workspace.name,
                "workspaceId": state.workspace.customer_id,
                "role": state.workspace.role,
                "roleAssignmentId": state.workspace.assignment_id,
                "assigned": state.workspace.assigned,
                "proven": state.workspace.proven,
            }
            if state.workspace
            else None
        ),
    }


def onboard_json(result: OnboardResult) -> dict[str, Any]:
    """The body of the PUT (and the CLI's `onboard --json`), so scripts can use either."""
    payload: dict[str, Any] = {
        "outcome": result.outcome.value,
        "changes": result.changes,
        **registration_json(result.registration),
    }
    if result.outcome is Outcome.PENDING:
        payload["pendingReason"] = result.pending_reason
        payload["retryAfter"] = result.retry_after
        if result.consent_url is not None:
            payload["consentUrl"] = result.consent_url
    return payload


def offboard_json(result: OffboardResult) -> dict[str, Any]:
    return {
        "tenantId": result.tenant_id,
        "integration": result.integration,
        "application": result.application,
        "secrets": result.secrets,
        "certificates": result.certificates,
        **({"customerAction": result.customer_action} if result.customer_action else {}),
        **({"workspaceRole": result.workspace_role} if result.workspace_role else {}),
    }


def rotation_json(result: RotationResult) -> dict[str, Any]:
    return {
        "tenantId": result.tenant_id,
        "integration": result.integration,
        "action": result.action.value,
        "detail": result.detail,
        "newKeyId": result.new_key_id,
        "retiredKeyIds": result.retired_key_ids,
        "wasExpired": result.was_expired,
        "expires": result.expires,
    }


def sweep_json(summary: SweepSummary) -> dict[str, Any]:
    return {
        "scanned": summary.scanned,
        "planned": dict(summary.planned),
        "outcomes": dict(summary.outcomes),
        "failuresByTenant": dict(summary.failures_by_tenant),
        "expiredFound": summary.expired,
    }


def sweep_invocation_json(report: InvocationReport) -> dict[str, Any]:
    return {
        "poisoned": report.poisoned,
        "dueEntries": report.due_entries,
        "enqueued": dict(report.enqueued),
        "pages": report.pages,
        "scanned": report.scanned,
        "fullPass": report.full_pass,
        "completed": report.completed,
        "stopped": report.stopped,
        "behind": report.behind,
    }


def consent_json(status: ConsentStatus) -> dict[str, Any]:
    """The body of GET /api/tenants/{tenantId}/consent; `consentUrl` only while consent is missing."""
    body: dict[str, Any] = {
        "tenantId": status.tenant_id,
        "consented": status.consented,
        "via": status.via,
        "missingRoles": status.missing_roles,
    }
    if not status.consented:
        body["consentUrl"] = status.consent_url
    return body


def fleet_row_json(row: FleetRow) -> dict[str, Any]:
    problem = row.last_problem
    return {
        "tenantId": row.tenant_id,
        "integration": row.integration,
        "credentialType": row.credential_type,
        "clientId": row.client_id,
        "expires": iso(row.expires) if row.expires else None,
        "lastRotated": iso(row.last_rotated) if row.last_rotated else None,
        "verified": row.verified,
        "state": row.state.value,
        "lastProblem": (
            {"type": problem.type, "at": iso(problem.at) if problem.at else None, "failures": problem.failures}
            if problem
            else None
        ),
        "superseded": row.superseded,
    }


def fleet_json(page: FleetPage) -> dict[str, Any]:
    return {
        "registrations": [fleet_row_json(row) for row in page.rows],
        "continuationToken": page.continuation_token,
        "listed": page.listed,
    }
