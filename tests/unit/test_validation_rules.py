"""The input rules every entry point shares (shared/domain/validation.py), pinned one by one."""

from __future__ import annotations

import json

import pytest

from shared.domain import validation
from shared.domain.validation import InvalidValue

TENANT = "0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9"


def test_a_tenant_id_is_a_guid_returned_lower_case() -> None:
    assert validation.tenant_id(TENANT) == TENANT
    assert validation.tenant_id(TENANT.upper()) == TENANT


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "contoso.onmicrosoft.com",
        "common",
        "organizations",
        "../" + TENANT,
        TENANT + "x",
        "{" + TENANT + "}",  # uuid.UUID accepts these forms; a tenant id is the 8-4-4-4-12 form only
        "urn:uuid:" + TENANT,
        TENANT.replace("-", ""),
        "00000000-0000-0000-0000-000000000000",  # the nil GUID
    ],
)
def test_anything_else_is_not_a_tenant_id(raw: str) -> None:
    with pytest.raises(InvalidValue):
        validation.tenant_id(raw)


def test_json_nested_to_the_limit_passes_and_one_level_more_is_refused() -> None:
    validation.json_nesting("[" * 16 + "]" * 16, 16)
    validation.json_nesting(json.dumps({"a": [{"b": ["[[[[[[[[[[[[[[[[[[[[[["]}]}), 16)  # brackets in text
    with pytest.raises(InvalidValue, match="nested more than 16 levels"):
        validation.json_nesting("[" * 17 + "]" * 17, 16)
    with pytest.raises(InvalidValue):
        validation.json_nesting("[" * 5000, 16)


@pytest.mark.parametrize("value", [0, -1, 731, True, 1.5, "30", None])
def test_a_lifetime_is_a_whole_number_of_days_in_range(value: object) -> None:
    with pytest.raises(InvalidValue):
        validation.lifetime_days(value, 730)


def test_text_is_stripped_printable_and_bounded() -> None:
    assert validation.text("  name ", 10) == "name"
    for bad in ("", "   ", "x" * 11, "a\nb", "a\x00b", 5):
        with pytest.raises(InvalidValue):
            validation.text(bad, 10)
