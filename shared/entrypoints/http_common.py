"""The HTTP plumbing every blueprint shares: input parsing, JSON and RFC 9457 problem responses.

One place maps an error to a response: named errors leave as problem+json with their stable
`type` (and `Retry-After` when the error says when to come back), anything else as a bare 500
naming the correlation id. Never a traceback, never a secret.
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
from shared.domain.audit import new_correlation_id
from shared.domain.errors import (
    PROBLEM_BASE,
    InvalidRequest,
    OnboardingError,
    PayloadTooLarge,
    UnsupportedMediaType,
    request_ids_text,
)
from shared.domain.registry import INTEGRATION_ID

logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
MAX_BODY_BYTES = 16 * 1024
# Every body this API takes is one flat object (depth 1); 16 is deeper than any of them and far from
# the thousand or so levels at which Python's parser runs out of stack.
MAX_BODY_DEPTH = 16
FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")

Handler = Callable[[func.HttpRequest], Awaitable[func.HttpResponse]]


def problem_responses(handler: Handler) -> Handler:
    """Every failure leaves as problem+json: named errors with their type, anything else as a bare 500."""

    async def wrapped(req: func.HttpRequest) -> func.HttpResponse:
        instance = request_path(req)
        correlation = new_correlation_id(req.headers.get("x-correlation-id"))
        try:
            # Whatever the request changed is published when it ends, even when it ends in an error.
            async with services().events.delivering():
                response = await handler(req)
        except OnboardingError as error:
            logger.warning(
                "%s %s -> %d %s: %s (correlation id %s; %s)",
                req.method, instance, error.status, error.problem_type, error.detail, correlation,
                request_ids_text(error.upstream_request_ids),
            )  # fmt: skip
            response = problem_response(error, instance)
        except Exception as error:  # noqa: BLE001 - the last line of defence for the caller
            # One request, one id: the body names the id the header echoes and the audit events carry.
            response = unexpected_response(error, instance, correlation)
        response.headers["x-correlation-id"] = correlation
        return response

    wrapped.__name__ = handler.__name__
    wrapped.__doc__ = handler.__doc__
    return wrapped


def problem_response(error: OnboardingError, instance: str) -> func.HttpResponse:
    body: dict[str, Any] = {
        "type": error.type_uri,
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
        "instance": instance,
        **error.extensions,
    }
    headers = {}
    retry_after = getattr(error, "retry_after", None)
    if retry_after:
        headers["Retry-After"] = str(max(1, round(retry_after)))
    return func.HttpResponse(json.dumps(body), status_code=error.status, mimetype=PROBLEM_JSON, headers=headers)


def unexpected_response(error: BaseException, instance: str, correlation_id: str) -> func.HttpResponse:
    """A bug: log it with the request's correlation id, which the caller can quote; tell the caller nothing else.

    The id is the one the request already carries (the caller's `x-correlation-id`, echoed in the
    header, or the one minted for it), so the body, the header, this log line and any audit event
    the request wrote before failing all name the same request."""
    logger.error("unexpected error (correlation id %s)", correlation_id, exc_info=error)
    body = {
        "type": PROBLEM_BASE + "internal",
        "title": "Internal error",
        "status": 500,
        "detail": "The request failed unexpectedly; quote the correlation id when reporting it.",
        "instance": instance,
        "correlationId": correlation_id,
    }
    return func.HttpResponse(json.dumps(body), status_code=500, mimetype=PROBLEM_JSON)


def json_response(payload: Any, status: int, headers: dict[str, str] | None = None) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(payload), status_code=status, mimetype="application/json", headers=headers)


def request_path(req: func.HttpRequest) -> str:
    return str(urlsplit(req.url).path)


# --- input validation: every input against an allow-list before any use case runs ---


def tenant_id_param(req: func.HttpRequest) -> str:
    try:
        return validation.tenant_id(str(req.route_params.get("tenantId", "")))
    except validation.InvalidValue as problem:
        raise InvalidRequest(f"tenantId {problem}.", field="tenantId") from None


def integration_param(req: func.HttpRequest) -> str:
    raw = str(req.route_params.get("integration", ""))
    if not INTEGRATION_ID.match(raw):
        raise InvalidRequest(
            "integration must be a catalog id (lowercase letters, digits, hyphens).", field="integration"
        )
    # Whether it is known is the use case's to say: an integration that has left the catalog can still be
    # read, rotated and offboarded where Key Vault records it (credentials.known_profile).
    return raw


def json_body(req: func.HttpRequest, fields: set[str]) -> dict[str, Any]:
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


def flag_param(req: func.HttpRequest, name: str) -> bool:
    raw = req.params.get(name)
    if raw is None:
        return False
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false.", field=name)
    return bool(raw == "true")
