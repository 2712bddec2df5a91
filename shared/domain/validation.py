"""Input rules shared by every entry point (HTTP API, CLI): one definition of a valid tenant id, text, lifetime."""

from __future__ import annotations

import re
import uuid

from shared.domain.model import CredentialType
from shared.domain.registry import INTEGRATION_ID  # add-on ids follow the catalog's id rule

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
# A JSON string, escapes included (the "unrolled loop" form: linear, no backtracking), and a bracket.
JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
JSON_BRACKET = re.compile(r"[\[\]{}]")


class InvalidValue(ValueError):
    """Says what is wrong without echoing the value back (it may be hostile)."""


def tenant_id(raw: str) -> str:
    """A directory id: a GUID in its 8-4-4-4-12 form, never the nil GUID; returned lower-case."""
    try:
        parsed = uuid.UUID(raw)
    except (ValueError, TypeError):
        raise InvalidValue("must be a GUID (the customer's directory id)") from None
    if len(raw) != 36 or parsed.int == 0:
        raise InvalidValue("must be a GUID in its 8-4-4-4-12 form, not the nil GUID")
    return str(parsed)


def text(value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > max_length or CONTROL_CHARACTERS.search(value):
        raise InvalidValue(f"must be 1-{max_length} printable characters")
    return value.strip()


def lifetime_days(value: object, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidValue(f"must be a whole number of days from 1 to {maximum}")
    return value


def credential_type(value: object) -> CredentialType:
    """One of the credential types by its name; whether the integration offers it is the use case's question."""
    names = [t.value for t in CredentialType]
    if not isinstance(value, str) or value not in names:
        raise InvalidValue(f"must be one of {', '.join(names)}")
    return CredentialType(value)


# A Log Analytics workspace's resource id, nothing else (https://learn.microsoft.com/azure/azure-resource-manager/
# management/resource-name-rules: resource group names 1-90 of letters, digits, `-_.()` not ending in `.`;
# Microsoft.OperationalInsights/workspaces names 4-63 of letters, digits and `-`, starting and ending alphanumeric).
WORKSPACE_RESOURCE_ID = re.compile(
    r"^/subscriptions/(?P<subscription>[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12})"
    r"/resourceGroups/(?P<group>[-\w.()]{0,89}[-\w()])"
    r"/providers/Microsoft\.OperationalInsights/workspaces/(?P<name>[A-Za-z0-9][A-Za-z0-9-]{2,61}[A-Za-z0-9])$",
    re.IGNORECASE | re.ASCII,
)


def workspace_resource_id(value: object) -> str:
    """A Log Analytics workspace's Azure resource id; whether it exists and may be reached is ARM's answer."""
    if not isinstance(value, str) or not WORKSPACE_RESOURCE_ID.match(value):
        raise InvalidValue(
            "must be a Log Analytics workspace's resource id: /subscriptions/{id}/resourceGroups/{group}"
            "/providers/Microsoft.OperationalInsights/workspaces/{name}"
        )
    return value


def catalog_id(value: object) -> str:
    """An id from the catalog (an integration, an add-on, a workspace role); which exist is the use case's question."""
    if not isinstance(value, str) or not INTEGRATION_ID.match(value):
        raise InvalidValue("must be an id from the catalog (see GET /api/integrations)")
    return value


MAX_ADD_ONS = 16


def add_on_ids(value: object) -> tuple[str, ...]:
    """A list of distinct add-on ids (at most 16); which ones the integration offers is the use case's question."""
    if (
        not isinstance(value, list) or len(value) > MAX_ADD_ONS
        or not all(isinstance(v, str) and INTEGRATION_ID.match(v) for v in value) or len(set(value)) != len(value)
    ):  # fmt: skip
        raise InvalidValue(f"must be a list of at most {MAX_ADD_ONS} distinct add-on ids (see GET /api/integrations)")
    return tuple(value)


# A PEM certificate (RFC 7468) or its base64 DER: printable ASCII and line breaks, nothing else.
CERTIFICATE_TEXT = re.compile(r"^[\x20-\x7e\r\n]+$")
MAX_CERTIFICATE_CHARS = 12 * 1024
# A compact JWS (RFC 7515): three base64url parts.
COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
MAX_ASSERTION_CHARS = 8 * 1024


def certificate_text(value: object) -> str:
    """The text of one certificate; what it holds is the certificate reader's question (never echoed)."""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_CERTIFICATE_CHARS:
        raise InvalidValue(f"must be a PEM or base64 DER certificate of at most {MAX_CERTIFICATE_CHARS} characters")
    if not CERTIFICATE_TEXT.match(value):
        raise InvalidValue("must be printable ASCII (PEM or base64 DER)")
    return value.strip()


def client_assertion(value: object) -> str:
    if not isinstance(value, str) or len(value) > MAX_ASSERTION_CHARS or not COMPACT_JWS.match(value):
        raise InvalidValue(f"must be a signed JWT (compact form) of at most {MAX_ASSERTION_CHARS} characters")
    return value


def json_nesting(text: str, max_depth: int) -> None:
    """Refuse JSON nested deeper than `max_depth`, before a parser sees it.

    Python's json module recurses once per array or object level, so about a thousand levels (a
    3 KB body of `[`) raise RecursionError, not a parse error; CPython's own test expects exactly
    that (test_highly_nested_objects_decoding in
    https://github.com/python/cpython/blob/main/Lib/test/test_json/test_recursion.py). Brackets
    inside strings are text and do not count; whether the rest is valid JSON is the parser's
    question, asked afterwards.
    """
    depth = 0
    for bracket in JSON_BRACKET.finditer(JSON_STRING.sub("", text)):
        depth += 1 if bracket.group() in "[{" else -1
        if depth > max_depth:
            raise InvalidValue(f"is nested more than {max_depth} levels deep")
