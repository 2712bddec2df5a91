"""Named errors, each carrying what an operator needs and mapping to one problem+json type.

Messages never contain secret material: they are built from ids, codes and field names only.

An error raised because an Azure service answered with a failure carries that answer's request ids
(`upstream_request_ids`, and in the problem details the `upstreamRequestIds` member): the ids a
support ticket to Microsoft asks for, under the names the service gives them (Graph's `request-id`,
`client-request-id` and `date`; Key Vault's and Storage's `x-ms-request-id` and
`x-ms-client-request-id`; Entra's `trace_id`, `correlation_id` and `timestamp`). The adapter that
speaks the service reads them from the SDK's exception, which it also chains as the cause.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBLEM_BASE = "https://tenant-onboarding.dev/problems/"
# The problem-details extension member holding the upstream request ids (omitted when none is known).
UPSTREAM_REQUEST_IDS = "upstreamRequestIds"


def request_ids_text(ids: Mapping[str, str]) -> str:
    """The ids for a log line: `request-id=… client-request-id=…`, or `no upstream request id`."""
    return " ".join(f"{name}={value}" for name, value in ids.items()) or "no upstream request id"


class OnboardingError(Exception):
    """Base of every error the API maps to a problem+json response.

    The keyword `upstream_request_ids` (a mapping of id names to ids) carries the ids of the failed
    upstream answer this error reports, if any (see the module's docstring): they are kept in
    `upstream_request_ids` and become the `upstreamRequestIds` extension member."""

    problem_type = "internal"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        # A keyword taken out of the extensions rather than a typed parameter of its own: callers pass
        # their context as **dict[str, str], which mypy refuses next to a Mapping-typed keyword.
        ids: Mapping[str, object] = extensions.pop("upstream_request_ids", None) or {}
        self.upstream_request_ids: dict[str, str] = {k: str(v) for k, v in ids.items() if v}
        self.extensions = {k: v for k, v in extensions.items() if v is not None}
        # Set by the use case that already audited this failure, so an entry point does not audit it twice.
        self.audited = False
        if self.upstream_request_ids:
            self.extensions[UPSTREAM_REQUEST_IDS] = dict(self.upstream_request_ids)

    @property
    def type_uri(self) -> str:
        return PROBLEM_BASE + self.problem_type


class InvalidRequest(OnboardingError):
    problem_type = "invalid-request"
    status = 400
    title = "The request is not valid"

    def __init__(self, detail: str, field: str, **extensions: Any) -> None:
        super().__init__(detail, field=field, **extensions)
        self.field = field


class PayloadTooLarge(OnboardingError):
    problem_type = "payload-too-large"
    status = 413
    title = "The request body is too large"


class UnsupportedMediaType(OnboardingError):
    problem_type = "unsupported-media-type"
    status = 415
    title = "The request body must be application/json"


class UnknownIntegration(OnboardingError):
    problem_type = "unknown-integration"
    status = 404
    title = "No such integration in the catalog"


class NotInThisCloud(OnboardingError):
    """The integration (or add-on) is in the catalog, but its resource APIs do not exist in this deployment's cloud."""

    problem_type = "not-in-this-cloud"
    status = 400
    title = "Not available in this cloud"


class RegistrationNotFound(OnboardingError):
    problem_type = "registration-not-found"
    status = 404
    title = "This integration is not onboarded in this tenant"


class TenantNotAllowed(OnboardingError):
    problem_type = "tenant-not-allowed"
    status = 403
    title = "This tenant may not be onboarded"

    @classmethod
    def home_tenant(cls, tenant_id: str) -> TenantNotAllowed:
        """The home tenant, refused to callers of a deployment that onboards customers (Settings.home_tenant_refused)."""
        return cls(
            "This deployment manages customer tenants; its home tenant is refused unless ALLOW_HOME_TENANT is true.",
            tenantId=tenant_id,
        )


class TenantNotFound(OnboardingError):
    problem_type = "tenant-not-found"
    status = 404
    title = "Entra knows no tenant with this id"


class ConsentRequired(OnboardingError):
    problem_type = "consent-required"
    status = 403
    title = "The customer tenant has not consented to the provisioning app"


class ResourceApiMissing(OnboardingError):
    problem_type = "resource-api-missing"
    status = 409
    title = "The tenant lacks a resource API this integration needs"


class PermissionNotOffered(OnboardingError):
    problem_type = "permission-not-offered"
    status = 409
    title = "A resource API in this tenant does not offer a permission the integration needs"


class SecretsForbiddenByPolicy(OnboardingError):
    problem_type = "secrets-forbidden-by-policy"
    status = 409
    title = "The tenant's app management policy forbids client secrets"


class SecretLifetimeExceedsPolicy(OnboardingError):
    problem_type = "secret-lifetime-exceeds-policy"
    status = 409
    title = "The tenant's app management policy refuses a secret this long-lived"


class CertificatesRefusedByPolicy(OnboardingError):
    problem_type = "certificates-refused-by-policy"
    status = 409
    title = "The tenant's app management policy refuses the certificates this service can create"


class PrivateKeySupplied(InvalidRequest):
    """A vendor-supplied certificate must be public: one that carries a private key is refused, and never logged."""

    problem_type = "private-key-supplied"
    title = "The certificate holds a private key; send only the public certificate"


class VendorRotatesCertificate(OnboardingError):
    problem_type = "vendor-rotates-certificate"
    status = 409
    title = "The vendor supplied this certificate and holds its key: only the vendor can replace it"


class NotOwned(OnboardingError):
    problem_type = "registration-not-owned"
    status = 409
    title = "An app with this unique name exists but this service does not own it"


class NameHeldByDeletedRegistration(OnboardingError):
    problem_type = "unique-name-held-by-deleted-app"
    status = 409
    title = "A deleted app this service cannot purge holds the registration's unique name"


class RegistrationBusy(OnboardingError):
    """Another operation holds the registration's lock (shared/domain/ports.py, Locks)."""

    problem_type = "registration-busy"
    status = 409
    title = "Another operation on this registration is in progress"
    retry_after = 5  # seconds: a lock is held for one operation, which takes seconds


class UpstreamError(OnboardingError):
    """Graph, Key Vault or Entra failed in a way this service cannot repair by itself."""

    problem_type = "upstream-error"
    status = 502
    title = "An Azure service returned an error"

    def __init__(
        self, detail: str, service: str, upstream_status: int | None, upstream_code: str | None, **extensions: Any
    ) -> None:
        super().__init__(
            detail, upstreamService=service, upstreamStatus=upstream_status, upstreamCode=upstream_code, **extensions
        )
        self.service = service
        self.upstream_status = upstream_status
        self.upstream_code = upstream_code


class UpstreamUnavailable(UpstreamError):
    problem_type = "upstream-unavailable"
    status = 503
    title = "An Azure service is throttling or unavailable; retry later"

    def __init__(
        self,
        detail: str,
        service: str,
        upstream_status: int | None,
        upstream_code: str | None,
        retry_after: float | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(detail, service, upstream_status, upstream_code, **extensions)
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    problem_type = "upstream-timeout"
    status = 504
    title = "An Azure service did not answer in time"


class WorkspaceNotFound(OnboardingError):
    problem_type = "workspace-not-found"
    status = 404
    title = "The Log Analytics workspace does not exist"


class WorkspaceAccessMissing(OnboardingError):
    """This service may not read the workspace or assign the Sentinel role on it: the customer's admin must grant it
    Role Based Access Control Administrator on the workspace, limited by a condition (docs/sentinel.md); the
    problem carries what to run (`grantCommand`)."""

    problem_type = "workspace-access-missing"
    status = 403
    title = "This service may not assign the Sentinel role on the workspace"
