"""Input rules shared by every entry point (HTTP API, CLI): one definition of a valid tenant id, text, lifetime."""

from __future__ import annotations

import re
import uuid

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


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
