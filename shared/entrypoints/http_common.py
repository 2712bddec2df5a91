"""RFC 9457 problem details: one stable `type` per named error, never a traceback or a secret."""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.functions as func

from shared.domain.errors import PROBLEM_BASE, OnboardingError, UpstreamUnavailable

logger = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"


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
    if isinstance(error, UpstreamUnavailable) and error.retry_after:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
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
