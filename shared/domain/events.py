"""The events this service publishes when something a consumer cares about changes: which audit events become
which CloudEvents, and what each one's `data` holds (never a secret: only what the audit event already carries).

The vendor's backend subscribes to the Event Grid topic (docs/events.md) instead of polling. Event types are
namespaced `TenantOnboarding.<Change>`; each has a JSON Schema under schemas/events/, which a test validates every
published event against.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from shared.domain.registry import iso, parse_iso

CREDENTIAL_CREATED: Final = "TenantOnboarding.CredentialCreated"
CREDENTIAL_ROTATED: Final = "TenantOnboarding.CredentialRotated"
CREDENTIAL_RETIRED: Final = "TenantOnboarding.CredentialRetired"
ROTATION_FAILED: Final = "TenantOnboarding.RotationFailed"
ROTATION_STUCK: Final = "TenantOnboarding.RotationStuck"
CONSENT_REVOKED: Final = "TenantOnboarding.ConsentRevoked"
POLICY_FORBIDS_CREDENTIAL: Final = "TenantOnboarding.PolicyForbidsCredential"
REGISTRATION_OFFBOARDED: Final = "TenantOnboarding.RegistrationOffboarded"
REMAINING_STEP_DONE: Final = "TenantOnboarding.RemainingStepDone"
EVENT_TYPES: Final = (
    CREDENTIAL_CREATED, CREDENTIAL_ROTATED, CREDENTIAL_RETIRED, ROTATION_FAILED, ROTATION_STUCK, CONSENT_REVOKED,
    POLICY_FORBIDS_CREDENTIAL, REGISTRATION_OFFBOARDED, REMAINING_STEP_DONE,
)  # fmt: skip

CONSENT_PROBLEMS: Final = frozenset({"consent-required"})
POLICY_PROBLEMS: Final = frozenset({"secrets-forbidden-by-policy", "certificates-refused-by-policy"})
# What an audit event's fields may carry into `data`, by name: identifiers and moments, nothing else.
DATA_FIELDS: Final = (
    "credentialType", "clientId", "keyId", "previousKeyId", "secretName", "certificateName", "version", "end",
    "problemType", "failures", "pendingSince", "step", "addOn", "directoryRoles", "reason", "application",
)  # fmt: skip


@dataclass(frozen=True)
class Event:
    """A CloudEvents 1.0 event as this service publishes it; `id` is given once, so a redelivery keeps it."""

    id: str
    type: str
    source: str
    subject: str
    time: datetime
    data: dict[str, str]

    def to_json(self) -> dict[str, Any]:
        """The structured-mode CloudEvent (https://github.com/cloudevents/spec, JSON format)."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": iso(self.time),
            "datacontenttype": "application/json",
            "data": dict(self.data),
        }

    @staticmethod
    def from_json(value: Mapping[str, Any]) -> Event:
        moment = parse_iso(str(value.get("time", "")))
        if moment is None or not isinstance(value.get("data"), dict):
            raise ValueError("not an event this service wrote")
        return Event(
            str(value["id"]), str(value["type"]), str(value["source"]), str(value["subject"]), moment,
            {str(k): str(v) for k, v in value["data"].items()},
        )  # fmt: skip


def event_type(audit_event: Mapping[str, str]) -> str | None:
    """The event type an audit event becomes, or None (most audit events are steps, not changes a consumer reads)."""
    operation = audit_event.get("operation", "")
    if audit_event.get("outcome") not in ("succeeded", "failed"):
        return None
    if operation == "registration.ready":
        return CREDENTIAL_CREATED
    if operation in ("secret.rotated", "certificate.rotated") and audit_event.get("outcome") == "succeeded":
        return CREDENTIAL_ROTATED
    if operation in ("secret.retired", "certificate.retired"):
        return CREDENTIAL_RETIRED
    if operation == "rotation.failed":
        problem = audit_event.get("problemType", "")
        if problem in CONSENT_PROBLEMS:
            return CONSENT_REVOKED
        return POLICY_FORBIDS_CREDENTIAL if problem in POLICY_PROBLEMS else ROTATION_FAILED
    if operation == "rotation.stuck":
        return ROTATION_STUCK
    if operation == "registration.offboarded":
        return REGISTRATION_OFFBOARDED
    if operation == "step.done":
        return REMAINING_STEP_DONE
    return None


def from_audit(audit_event: Mapping[str, str], source: str, now: datetime) -> Event | None:
    """The event an audit event becomes (None: it is not one a consumer is told about)."""
    kind = event_type(audit_event)
    tenant, integration = audit_event.get("tenantId"), audit_event.get("integration")
    if kind is None or not tenant or not integration:
        return None
    data = {"tenantId": tenant, "integration": integration}
    data |= {name: str(audit_event[name]) for name in DATA_FIELDS if audit_event.get(name) not in (None, "")}
    if kind in (CREDENTIAL_ROTATED, CREDENTIAL_RETIRED):
        data.setdefault("credentialType", "certificate" if audit_event["operation"].startswith("cert") else "secret")
    if kind == ROTATION_FAILED:
        data["willRetry"] = "true"  # the sweep retries a registration whose rotation failed, after a backoff
    if "correlationId" in audit_event:
        data["correlationId"] = audit_event["correlationId"]
    return Event(str(uuid.uuid4()), kind, source, f"tenants/{tenant}/integrations/{integration}", now, data)
