"""Graph's failed answers as the project's errors, each carrying Graph's request ids (never a message or a body).

Matching is on status and `error.code`; the few message texts matched are listed, with their sources, in
emulator/FIDELITY.md ("Message-text matches").
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import httpx
from kiota_abstractions.headers_collection import HeadersCollection
from msgraph.generated.models.o_data_errors.o_data_error import ODataError

from shared.domain.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable, request_ids_text

logger = logging.getLogger("shared.adapters.graph")  # one logger for the Graph adapter, whichever module logs
# Graph files every answer under a `request-id` and the caller's `client-request-id` (msgraph-core's telemetry
# handler sends one with every request), as response headers and again, with the `date`, in an error body's
# innerError (https://learn.microsoft.com/graph/errors): what a support ticket to Microsoft names.
REQUEST_ID = "request-id"
CLIENT_REQUEST_ID = "client-request-id"


# Answers to a create-if-missing upsert that met an existing service principal this caller may not update
# (emulator/FIDELITY.md, "unknown": no Microsoft page shows this answer).
PRINCIPAL_EXISTS_STATUSES = frozenset({403, 409})


def error_code(error: ODataError) -> str | None:
    return error.error.code if error.error is not None else None


def error_message(error: ODataError) -> str:
    return str(error.error.message or "") if error.error is not None else ""


def has_detail(error: ODataError, code: str) -> bool:
    details = error.error.details if error.error is not None else None
    return any(d.code == code for d in details or [])


def retry_after(error: ODataError) -> float | None:
    return retry_after_header(error.response_headers or {})


def retry_after_header(headers: dict[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = next(iter(value), None) if isinstance(value, (list, set, tuple)) else value
            try:
                return max(0.0, float(str(raw)))
            except ValueError:
                return None
    return None


def translate(error: ODataError, doing: str, tenant_id: str) -> Exception:
    """The project's error for Graph's failed answer, with its request ids (logged here, once)."""
    status, code = error.response_status_code, error_code(error)
    ids = log_failure(error, doing, tenant_id)
    if status == 429 or status == 503:
        return UpstreamUnavailable(
            f"Graph is throttling or unavailable while {doing}", "graph", status, code,
            retry_after=retry_after(error), tenantId=tenant_id, upstream_request_ids=ids,
        )  # fmt: skip
    if status == 504:
        return UpstreamTimeout(
            f"Graph timed out while {doing}", "graph", status, code, tenantId=tenant_id, upstream_request_ids=ids
        )
    return UpstreamError(
        f"Graph failed while {doing}", "graph", status, code, tenantId=tenant_id, upstream_request_ids=ids
    )


def no_answer(error: httpx.HTTPError, tenant_id: str) -> Exception:
    """No answer came: the client-request-id the request carried is what Graph would have filed it under."""
    ids = sent_ids(error)
    logger.info("Graph did not answer in tenant %s: %s (%s)", tenant_id, type(error).__name__, request_ids_text(ids))
    if isinstance(error, httpx.TimeoutException):
        return UpstreamTimeout(
            "Graph did not answer in time", "graph", None, type(error).__name__,
            tenantId=tenant_id, upstream_request_ids=ids,
        )  # fmt: skip
    return UpstreamUnavailable(
        "The connection to Graph failed", "graph", None, type(error).__name__,
        tenantId=tenant_id, upstream_request_ids=ids,
    )  # fmt: skip


# --- Graph's request ids, for support tickets (never a message or a body) ---


def log_failure(error: ODataError, doing: str, tenant_id: str) -> dict[str, str]:
    """Log Graph's failed answer with its request ids (never its message or body), and return the ids."""
    ids = request_ids(error)
    logger.info(
        "Graph answered %s %s while %s in tenant %s (%s)",
        error.response_status_code, error_code(error), doing, tenant_id, request_ids_text(ids),
    )  # fmt: skip
    return ids


def request_ids(error: ODataError) -> dict[str, str]:
    """`request-id`, `client-request-id` (the response's headers, else the error body's innerError) and `date`."""
    inner = error.error.inner_error if error.error is not None else None
    date = getattr(inner, "date", None)
    return _graph_ids(
        _headers(error.response_headers),
        {
            REQUEST_ID: getattr(inner, "request_id", None),
            CLIENT_REQUEST_ID: getattr(inner, "client_request_id", None),
            "date": date.isoformat() if isinstance(date, datetime) else date,
        },
    )


def item_ids(item: dict[str, Any]) -> dict[str, str]:
    """The same ids for one answer inside a $batch response: its headers, else its body's innerError."""
    body = item.get("body")
    error = body.get("error") if isinstance(body, dict) else None
    inner = error.get("innerError") if isinstance(error, dict) else None
    return _graph_ids(_headers(item.get("headers")), inner if isinstance(inner, dict) else {})


def sent_ids(error: httpx.HTTPError) -> dict[str, str]:
    """The client-request-id of a request that got no answer."""
    try:
        sent = error.request.headers.get(CLIENT_REQUEST_ID)
    except RuntimeError:  # httpx raises this when the error has no request
        return {}
    return {CLIENT_REQUEST_ID: sent} if sent else {}


def _graph_ids(headers: dict[str, str], inner: dict[str, Any]) -> dict[str, str]:
    ids = {name: headers.get(name) or inner.get(name) for name in (REQUEST_ID, CLIENT_REQUEST_ID)}
    ids["date"] = inner.get("date")
    return {name: str(value) for name, value in ids.items() if value}


def _headers(raw: object) -> dict[str, str]:
    """Headers as kiota hands them over (httpx.Headers, a dict, a HeadersCollection of value sets) or a $batch
    item lists them, by lower-case name."""
    if isinstance(raw, HeadersCollection):
        raw = raw.get_all()
    if not isinstance(raw, Mapping):
        return {}
    found: dict[str, str] = {}
    for name, value in raw.items():
        first = next(iter(sorted(value)), None) if isinstance(value, list | set | tuple) else value
        if first is not None:
            found[str(name).lower()] = str(first)
    return found
