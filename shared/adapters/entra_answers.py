"""Entra's token endpoint, read: the AADSTS code of a refusal, the ids Microsoft support asks for, a token's claims.

Shared by the credentials this service uses (identity.py) and the proof of a new client secret
(token_check.py). Only codes, ids and claims are read; never a request body, which holds the secret.
"""

from __future__ import annotations

import base64
import json
import logging
import re
from typing import Any

from azure.core.exceptions import AzureError, ClientAuthenticationError

from shared.domain.errors import UpstreamError, UpstreamUnavailable, request_ids_text

logger = logging.getLogger("shared.adapters.identity")  # one logger for Entra's answers, whichever module reads them
AADSTS = re.compile(r"AADSTS(\d+)")
# Codes a brand-new app or secret gets while Entra replicates it: invalid or "expired" secret,
# unknown app, no service principal yet (AADSTS7000215, 7000222, 700016 and 7000229 in
# https://learn.microsoft.com/entra/identity-platform/reference-error-codes, each also at
# https://login.microsoftonline.com/error?code=<number>; clients report 7000222 for secrets minutes old).
REPLICATION_CODES = frozenset({"7000215", "7000222", "700016", "7000229"})
# Entra's answers that mean "try again shortly" (same page: 90033 "A transient error has occurred",
# 50196 "The server is busy"), besides any 429 or 5xx.
TRANSIENT_TOKEN_CODES = frozenset({"90033", "50196"})
# What Microsoft support asks for about a refused token request: the error response's `trace_id`,
# `correlation_id` and `timestamp` (the sample error response in the page above). The description
# repeats them as text ("Trace ID: … Correlation ID: … Timestamp: …"), read only when there is no body.
# Each is taken only in its own shape (a GUID, a time), so nothing else of a response can pass as one.
_GUID = r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}"
_TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ"
ENTRA_IDS = {  # name: (its shape, how the description states it)
    "trace_id": (re.compile(_GUID), re.compile(rf"Trace ID: ({_GUID})")),
    "correlation_id": (re.compile(_GUID), re.compile(rf"Correlation ID: ({_GUID})")),
    "timestamp": (re.compile(_TIME), re.compile(rf"Timestamp: ({_TIME})")),
}


def aadsts(error: ClientAuthenticationError) -> str | None:
    return aadsts_text(str(error.message or error))


def aadsts_text(text: str) -> str | None:
    match = AADSTS.search(text)
    return match.group(1) if match else None


def status_of(error: ClientAuthenticationError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def refused(error: ClientAuthenticationError, code: str | None, tenant_id: str) -> dict[str, str]:
    """Log Entra's refusal of a token request with its ids (never its description), and return the ids."""
    ids = entra_ids(error)
    logger.info(
        "Entra refused a token request for tenant %s: %s %s (%s)",
        tenant_id, status_of(error), f"AADSTS{code}" if code else "no AADSTS code", request_ids_text(ids),
    )  # fmt: skip
    return ids


def token_refusal(error: ClientAuthenticationError, tenant_id: str, what: str) -> UpstreamError:
    """Entra's refusal of a token this service needs for itself, as the project's error: a transient one (429,
    5xx, AADSTS90033/50196, after azure-identity's own retries) is UpstreamUnavailable, which callers answer
    with Retry-After and the sweep retries; any other is UpstreamError naming the code. `what`: whose token."""
    code, status = aadsts(error), status_of(error)
    ids = refused(error, code, tenant_id)
    upstream_code = f"AADSTS{code}" if code else None
    if code in TRANSIENT_TOKEN_CODES or (status is not None and (status == 429 or status >= 500)):
        return UpstreamUnavailable(
            f"Entra's token endpoint is unavailable ({what})", "entra", status, upstream_code, upstream_request_ids=ids
        )
    return UpstreamError(
        f"Entra refused {what}", "entra", status, upstream_code, tenantId=tenant_id, upstream_request_ids=ids
    )


def entra_ids(error: ClientAuthenticationError) -> dict[str, str]:
    """`trace_id`, `correlation_id` and `timestamp` of Entra's error response, those it states.

    From the JSON body when the exception still holds the response, else from the description's own
    "Trace ID: …" text; only these three values are taken, by pattern, never the text around them."""
    body = _error_body(error)
    text = str(error.message or "")
    ids: dict[str, str] = {}
    for name, (shape, stated) in ENTRA_IDS.items():
        value = body.get(name)
        if not isinstance(value, str) or not shape.fullmatch(value):
            found = stated.search(text)
            value = found.group(1) if found else None
        if value:
            ids[name] = value
    return ids


def _error_body(error: ClientAuthenticationError) -> dict[str, Any]:
    response = getattr(error, "response", None)
    if response is None:  # no answer, or a credential (managed identity through MSAL) that keeps none
        return {}
    try:
        body = json.loads(response.text())
    except (AzureError, AttributeError, TypeError, ValueError):  # not read, not text, not JSON
        return {}
    return body if isinstance(body, dict) else {}


def token_claims(access_token: str) -> dict[str, Any]:
    """A token's claims. The token came straight from the authority over TLS; we read it, not trust it."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise UpstreamError("Entra returned a token that is not a JWT", "entra", 200, None) from exc
    if not isinstance(claims, dict):
        raise UpstreamError("Entra returned a token that is not a JWT", "entra", 200, None)
    return claims


def roles_of(access_token: str) -> set[str]:
    """The token's `roles` claim."""
    return _string_list(token_claims(access_token), "roles")


def directory_roles_of(access_token: str) -> set[str]:
    """The token's `wids` claim, lower-cased: the template ids of the Entra roles its subject holds. An app's own
    token carries the roles assigned to its service principal: Exchange Online reads them from there
    (https://learn.microsoft.com/powershell/exchange/app-only-auth-powershell-v2, "the directory role ... is
    returned in the access token"; a recorded app token with `wids` in
    https://github.com/microsoftgraph/msgraph-sdk-powershell/issues/1782). A claim may be absent
    (https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference): absent reads as none."""
    return {role.lower() for role in _string_list(token_claims(access_token), "wids")}


def _string_list(claims: dict[str, Any], name: str) -> set[str]:
    values = claims.get(name, [])
    return {str(value) for value in values} if isinstance(values, list) else set()
