"""Named errors, each carrying what an operator needs and mapping to one problem+json type.

Messages never contain secret material: they are built from ids, codes and field names only.
"""

from __future__ import annotations

from typing import Any

PROBLEM_BASE = "https://tenant-onboarding.dev/problems/"


class OnboardingError(Exception):
    """Base of every error the API maps to a problem+json response."""

    problem_type = "internal"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extensions = {k: v for k, v in extensions.items() if v is not None}

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


class RegistrationNotFound(OnboardingError):
    problem_type = "registration-not-found"
    status = 404
    title = "This integration is not onboarded in this tenant"


class TenantNotAllowed(OnboardingError):
    problem_type = "tenant-not-allowed"
    status = 403
    title = "This tenant may not be onboarded"


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


class NotOwned(OnboardingError):
    problem_type = "registration-not-owned"
    status = 409
    title = "An app with this unique name exists but this service does not own it"


class NameHeldByDeletedRegistration(OnboardingError):
    problem_type = "unique-name-held-by-deleted-app"
    status = 409
    title = "A deleted app this service cannot purge holds the registration's unique name"


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
