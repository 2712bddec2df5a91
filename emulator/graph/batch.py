"""JSON batching (POST /$batch): up to 20 sub-requests, each dispatched like a direct call and failing on its own."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import injected_error
from ..faults import FaultInjector
from ..state import JsonObject
from .calls import GraphCall, GraphResult
from .odata import split_path

MAX_BATCH = 20


def batch(call: GraphCall, faults: FaultInjector, dispatch: Callable[[GraphCall], GraphResult]) -> GraphResult:
    body = call.json()
    requests = body.get("requests")
    if not isinstance(requests, list) or not requests:
        raise call.error(400, "BadRequest", "Invalid batch payload format.")
    if len(requests) > MAX_BATCH:
        raise call.error(400, "BadRequest", "Number of requests inside batch exceeds the limit.")
    ids = [r.get("id") if isinstance(r, dict) else None for r in requests]
    if any(not isinstance(i, str) or not i for i in ids) or len(set(ids)) != len(ids):
        raise call.error(400, "BadRequest", "Batch request ids must be unique non-empty strings.")
    responses: list[JsonObject] = []
    statuses: dict[str, int] = {}
    for item in requests:
        result = _batch_item(call, item, statuses, faults, dispatch)
        statuses[item["id"]] = result.status
        entry: JsonObject = {
            "id": item["id"],
            "status": result.status,
            "headers": {"Content-Type": "application/json"} | result.headers,
        }
        if result.body is not None:
            entry["body"] = result.body
        responses.append(entry)
    return GraphResult(200, {"responses": responses})


def _batch_item(
    call: GraphCall,
    item: JsonObject,
    statuses: dict[str, int],
    faults: FaultInjector,
    dispatch: Callable[[GraphCall], GraphResult],
) -> GraphResult:
    method, url = str(item.get("method", "")).upper(), item.get("url")
    if method not in ("GET", "POST", "PATCH", "DELETE", "PUT") or not isinstance(url, str):
        return GraphResult(400, {"error": {"code": "BadRequest", "message": "Invalid method or url in batch request."}})
    for dependency in item.get("dependsOn") or []:
        if not 200 <= statuses.get(dependency, 424) < 300:
            return GraphResult(424, {"error": {"code": "FailedDependency", "message": "Failed dependency."}})
    # Graph wants URLs relative to the version root; an absolute one fails this item with
    # "Resource not found for the segment ..." (microsoftgraph/msgraph-sdk-python#1015), as here.
    path = urlsplit(url if url.startswith("/") else "/" + url)
    # Graph throttles and fails sub-requests individually; the stand-in's faults do the same.
    _, failure = faults.choose("graph", method, "/v1.0" + path.path)
    if failure is not None and failure.kind == "status":
        error = injected_error("graph", failure.status, failure.retry_after)
        return GraphResult(
            error.response.status_code,
            json.loads(bytes(error.response.body)),
            {k: v for k, v in error.response.headers.items() if k.lower() == "retry-after"},
        )
    sub_body = item.get("body")
    sub = GraphCall(
        method=method,
        segments=split_path(unquote(path.path)),
        query=dict(parse_qsl(path.query)),
        headers={str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()},
        raw_body=json.dumps(sub_body).encode() if sub_body is not None else None,
        caller=call.caller,
        tenant=call.tenant,
        request=None,
    )
    return dispatch(sub)
