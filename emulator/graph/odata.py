"""OData as Graph speaks it: paths and key syntax, $filter, $select, $top and $skiptoken paging, @odata envelopes."""

from __future__ import annotations

import base64
import re
from collections.abc import Callable

from ..state import JsonObject
from .calls import GraphCall, GraphResult

CONTEXT = "https://graph.microsoft.com/v1.0/$metadata"
KEYED = re.compile(r"^(?P<set>applications|servicePrincipals)\((?P<key>appId|uniqueName)='(?P<value>[^']*)'\)$")
DEFAULT_PAGE = 100
MAX_PAGE = 999

FILTER_EQ = re.compile(r"^(?P<prop>[A-Za-z]+)\s+eq\s+'(?P<value>(?:[^']|'')*)'$")
FILTER_STARTS = re.compile(r"^startswith\((?P<prop>[A-Za-z]+)\s*,\s*'(?P<value>(?:[^']|'')*)'\)$")
FILTER_ANY = re.compile(r"^(?P<prop>[A-Za-z]+)/any\((?P<var>\w+):\s*(?P=var)\s+eq\s+'(?P<value>(?:[^']|'')*)'\)$")


def split_path(path: str) -> list[str]:
    # Tolerate the SDK's occasional double slash ("/v1.0//applications").
    return [segment for segment in path.split("/") if segment]


def entity(obj: JsonObject, entity_set: str) -> JsonObject:
    return {"@odata.context": f"{CONTEXT}#{entity_set}/$entity", **obj}


def directory_object(obj: JsonObject) -> JsonObject:
    kind = (
        "servicePrincipal"
        if "servicePrincipalType" in obj
        else "application"
        if "signInAudience" in obj
        else "directoryObject"
    )
    return {
        "@odata.type": f"#microsoft.graph.{kind}",
        **{k: obj.get(k) for k in ("id", "appId", "displayName") if k in obj},
    }


def select(obj: JsonObject, query: dict[str, str]) -> JsonObject:
    selected = query.get("$select")
    if not selected:
        return obj
    keep = {p.strip() for p in selected.split(",")} | {"id"}
    return {k: v for k, v in obj.items() if k in keep or k.startswith("@odata.")}


def collection(call: GraphCall, context: str, rows: list[JsonObject], type_name: str) -> GraphResult:
    """One page of `rows` after $filter, $select and $top, with @odata.nextLink when more remain.

    The caller has authorized the read already (authorization.require)."""
    query = call.query
    if "$filter" in query:
        predicate = compile_filter(call, query["$filter"])
        rows = [r for r in rows if predicate(r)]
    start = _decode_skiptoken(call, query.get("$skiptoken"))
    top = query.get("$top")
    page_size = DEFAULT_PAGE
    if top is not None:
        if not top.isdigit() or not 1 <= int(top) <= MAX_PAGE:
            raise call.error(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and {MAX_PAGE} inclusive.",
            )
        page_size = int(top)
    page = [select(dict(r), query) for r in rows[start : start + page_size]]
    body: JsonObject = {"@odata.context": f"{CONTEXT}#{context}", "value": page}
    if start + page_size < len(rows):
        token = base64.urlsafe_b64encode(str(start + page_size).encode()).decode()
        params = [f"{k}={v}" for k, v in query.items() if k != "$skiptoken"]
        params.append(f"$skiptoken={token}")
        base = f"https://{call.request.headers['host']}" if call.request else ""
        body["@odata.nextLink"] = f"{base}/v1.0/{'/'.join(call.segments)}?{'&'.join(params)}"
    return GraphResult(200, body)


def compile_filter(call: GraphCall, expression: str) -> Callable[[JsonObject], bool]:
    """The $filter forms directory queries support without advanced query: eq, startswith, any(), and."""
    clauses = [c.strip() for c in re.split(r"\s+and\s+", expression.strip()) if c.strip()]
    predicates: list[Callable[[JsonObject], bool]] = []
    for clause in clauses:
        if m := FILTER_EQ.match(clause):
            predicates.append(_equals(m.group("prop"), _unquote_odata(m.group("value"))))
        elif m := FILTER_STARTS.match(clause):
            predicates.append(_starts_with(m.group("prop"), _unquote_odata(m.group("value"))))
        elif m := FILTER_ANY.match(clause):
            predicates.append(_any_equals(m.group("prop"), _unquote_odata(m.group("value"))))
        else:
            raise call.error(400, "Request_UnsupportedQuery", "Unsupported or invalid query filter clause specified.")
    return lambda row: all(p(row) for p in predicates)


def _unquote_odata(value: str) -> str:
    return value.replace("''", "'").lower()


def _equals(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: str(row.get(prop) or "").lower() == value


def _starts_with(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: str(row.get(prop) or "").lower().startswith(value)


def _any_equals(prop: str, value: str) -> Callable[[JsonObject], bool]:
    return lambda row: any(str(item).lower() == value for item in (row.get(prop) or []))


def _decode_skiptoken(call: GraphCall, token: str | None) -> int:
    if not token:
        return 0
    try:
        return max(0, int(base64.urlsafe_b64decode(token.encode()).decode()))
    except ValueError as exc:
        raise call.error(
            400, "Request_BadRequest", "The specified page token value has expired or is invalid."
        ) from exc
