"""The HTTP API the vendor's backend calls: parse and validate input, call one use case, map the result.

No Graph or Key Vault here. Every input is validated against an allow-list before any use case
runs, so an invalid request creates nothing; errors are problem+json with a stable type.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func

from shared.bootstrap import services
from shared.domain import validation
from shared.domain.catalog import PROFILE_ID
from shared.domain.errors import InvalidRequest, OnboardingError, PayloadTooLarge, UnsupportedMediaType
from shared.entrypoints.http_common import problem_response, unexpected_response
from shared.entrypoints.openapi import openapi_document
from shared.usecases.credentials import new_correlation_id
from shared.usecases.onboarding import OnboardRequest, Outcome

logger = logging.getLogger(__name__)
bp = func.Blueprint()  # type: ignore[no-untyped-call]

MAX_BODY_BYTES = 16 * 1024
# Every body this API takes is one flat object (depth 1); 16 is deeper than any of them and far from
# the thousand or so levels at which Python's parser runs out of stack.
MAX_BODY_DEPTH = 16
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
BODY_FIELDS = {"displayName", "secretLifetimeDays", "notes"}
STATUS_BY_OUTCOME = {Outcome.CREATED: 201, Outcome.UPDATED: 200, Outcome.COMPLETE: 200, Outcome.PENDING: 202}

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def problem_responses(handler: Handler) -> Handler:
    """Every failure leaves as problem+json: named errors with their type, anything else as a bare 500."""

    async def wrapped(req: func.HttpRequest) -> func.HttpResponse:
        instance = _path(req)
        correlation = new_correlation_id(req.headers.get("x-correlation-id"))
        try:
            response = await handler(req)
            response.headers["x-correlation-id"] = correlation
            return response
        except OnboardingError as error:
            logger.warning(
                "%s %s -> %d %s: %s (correlation id %s)",
                req.method, instance, error.status, error.problem_type, error.detail, correlation,
            )  # fmt: skip
            response = problem_response(error, instance)
            response.headers["x-correlation-id"] = correlation
            return response
        except Exception as error:  # noqa: BLE001 - the last line of defence for the caller
            # One request, one id: the body names the id the header echoes and the audit events carry.
            response = unexpected_response(error, instance, correlation)
            response.headers["x-correlation-id"] = correlation
            return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["PUT"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def onboard_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Create or converge one integration's app registration in one tenant (idempotent)."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    body = json_body(req)
    request = OnboardRequest(
        tenant_id=tenant_id,
        integration=integration,
        display_name=_text(body, "displayName", 120),
        secret_lifetime_days=_lifetime(body),
        notes=_text(body, "notes", 500),
    )
    result = await services().onboarding.onboard(request)
    headers = {}
    if result.outcome is Outcome.PENDING:
        headers["Retry-After"] = str(result.retry_after)
    if result.outcome is Outcome.CREATED:
        headers["Location"] = _path(req)
    return json_response(result.to_json(), STATUS_BY_OUTCOME[result.outcome], headers)


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def get_integration(req: func.HttpRequest) -> func.HttpResponse:
    """The live state of one integration in one tenant, read back from Entra and Key Vault."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    return json_response(await services().onboarding.status(tenant_id, integration), 200)


@bp.route(route="tenants/{tenantId}/integrations/{integration}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def offboard_integration(req: func.HttpRequest) -> func.HttpResponse:
    """Remove the app registration and soft-delete its secrets; idempotent (a second DELETE changes nothing)."""
    tenant_id, integration = tenant_id_param(req), integration_param(req)
    result = await services().offboarding.offboard(
        tenant_id,
        integration,
        purge_application=_flag(req, "purgeApplication"),
        purge_secrets=_flag(req, "purgeSecrets"),
    )
    return json_response(result.to_json(), 200)


@bp.route(route="tenants/{tenantId}/consent", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problem_responses
async def tenant_consent(req: func.HttpRequest) -> func.HttpResponse:
    """Whether this service can manage apps in the tenant, and the admin-consent URL when it cannot."""
    tenant_id = tenant_id_param(req)
    return json_response(await services().consent_status(tenant_id), 200)


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


# --- input validation ---


def tenant_id_param(req: func.HttpRequest) -> str:
    try:
        return validation.tenant_id(str(req.route_params.get("tenantId", "")))
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"tenantId {problem}.", field="tenantId") from None


def integration_param(req: func.HttpRequest) -> str:
    raw = str(req.route_params.get("integration", ""))
    if not PROFILE_ID.match(raw):
        raise InvalidRequest(
            "integration must be a catalog id (lowercase letters, digits, hyphens).", field="integration"
        )
    # Whether it is known is the use case's to say: an integration that has left the catalog can still be
    # read, rotated and offboarded where Key Vault records it (credentials.known_profile).
    return raw


def json_body(req: func.HttpRequest, fields: set[str] = BODY_FIELDS) -> dict[str, Any]:
    raw = req.get_body() or b""
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"The body may be at most {MAX_BODY_BYTES} bytes.")
    if not raw.strip():
        return {}
    content_type = (req.headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest("The body is not valid UTF-8 JSON.", field="body") from None
    try:
        validation.json_nesting(text, MAX_BODY_DEPTH)
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"The body {problem}.", field="body") from None
    try:
        body = json.loads(text)
    except ValueError:
        raise InvalidRequest("The body is not valid UTF-8 JSON.", field="body") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The body must be a JSON object.", field="body")
    unknown = sorted(set(body) - fields)
    if unknown:
        # Name the field only when it is a plain identifier: a hostile key is not echoed back.
        name = unknown[0] if FIELD_NAME.fullmatch(unknown[0]) else "(unnamed)"
        raise InvalidRequest(f"Unknown field {name!r}; allowed: {', '.join(sorted(fields))}.", field=name)
    return body


def _text(body: dict[str, Any], name: str, max_length: int) -> str | None:
    if body.get(name) is None:
        return None
    try:
        return validation.text(body[name], max_length)
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"{name} {problem}.", field=name) from None


def _lifetime(body: dict[str, Any]) -> int | None:
    if body.get("secretLifetimeDays") is None:
        return None
    try:
        return validation.lifetime_days(body["secretLifetimeDays"], services().settings.max_secret_lifetime_days)
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"secretLifetimeDays {problem}.", field="secretLifetimeDays") from None


def _flag(req: func.HttpRequest, name: str) -> bool:
    raw = req.params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false.", field=name)
    return bool(raw == "true")


def _path(req: func.HttpRequest) -> str:
    return str(urlsplit(req.url).path)


def json_response(payload: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json", headers=headers)
