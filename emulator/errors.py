"""Error responses in each service's own wire shape: Graph, Key Vault and Entra's token endpoint.

Graph: `{"error": {"code", "message", "innerError": {"date", "request-id", "client-request-id"}}}`.
Key Vault: `{"error": {"code", "message", "innererror"?: {"code"}}}`.
Entra (OAuth 2.0, RFC 6749 5.2 plus Entra's fields): `{"error", "error_description",
"error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}` where the
description starts with the AADSTS code.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import JSONResponse


class ServiceError(Exception):
    """Raised anywhere in a handler; the app turns it into the service's error response."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def graph_error(
    request: Request | None,
    status: int,
    code: str,
    message: str,
    details: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> ServiceError:
    request_id = str(uuid.uuid4())
    client_request_id = (request.headers.get("client-request-id") if request else None) or request_id
    error: dict[str, object] = {
        "code": code,
        "message": message,
        "innerError": {
            # Graph writes this timestamp without fraction and without a zone designator.
            "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
            "request-id": request_id,
            "client-request-id": client_request_id,
        },
    }
    if details:
        error["details"] = details
    response = JSONResponse({"error": error}, status_code=status, headers=headers)
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = client_request_id
    return ServiceError(response)


def vault_error(
    status: int,
    code: str,
    message: str,
    inner_code: str | None = None,
    headers: dict[str, str] | None = None,
) -> ServiceError:
    error: dict[str, object] = {"code": code, "message": message}
    if inner_code:
        error["innererror"] = {"code": inner_code}
    return ServiceError(JSONResponse({"error": error}, status_code=status, headers=headers))


def entra_error(
    status: int,
    error: str,
    aadsts: int,
    description: str,
    headers: dict[str, str] | None = None,
) -> ServiceError:
    trace_id = str(uuid.uuid4())
    correlation_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{aadsts}: {description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {now.strftime('%Y-%m-%d %H:%M:%SZ')}"
        ),
        "error_codes": [aadsts],
        "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return ServiceError(JSONResponse(body, status_code=status, headers=headers))


def injected_error(service: str, status: int, retry_after: int | None) -> ServiceError:
    """The body a service sends with a throttling or server error, for fault injection."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    if service == "graph":
        # Graph's throttling code; see learn.microsoft.com/graph/throttling.
        codes = {
            429: ("TooManyRequests", "Too many requests."),
            500: ("generalException", "An unexpected error occurred."),
            502: ("badGateway", "Bad gateway."),
            503: ("serviceNotAvailable", "The service is temporarily unavailable."),
            504: ("timeout", "The operation timed out."),
        }
        code, message = codes.get(status, ("UnknownError", "Injected failure."))
        return graph_error(None, status, code, message, headers=headers)
    if service == "vault":
        codes = {
            429: ("Throttled", "Request was not processed because too many requests were received."),
            503: ("ServiceUnavailable", "The service is temporarily unavailable."),
        }
        code, message = codes.get(status, ("InternalServerError", "An unexpected error occurred."))
        return vault_error(status, code, message, headers=headers)
    if service in ("entra", "identity"):
        if status == 429:
            return entra_error(status, "temporarily_unavailable", 50196, "The server is busy.", headers)
        return entra_error(status, "temporarily_unavailable", 90033, "A transient error has occurred.", headers)
    return ServiceError(JSONResponse({"error": "injected"}, status_code=status, headers=headers))
