"""ARM's action wildcards as ArmWorkspaces.may_assign_roles reads a permissions list entry (shared/adapters/workspaces.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.workspaces import ASSIGN_ACTION, permits

CONTRIBUTOR_NOT = [
    "Microsoft.Authorization/*/Delete",
    "Microsoft.Authorization/*/Write",
    "Microsoft.Authorization/elevateAccess/Action",
]


@pytest.mark.parametrize(
    ("entry", "allowed"),
    [
        ({"actions": ["*"], "notActions": []}, True),  # Owner
        (
            {"actions": ["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"]},
            True,
        ),  # User Access Administrator
        ({"actions": ["*/write"], "notActions": []}, True),
        ({"actions": ["microsoft.authorization/roleassignments/WRITE"]}, True),  # case-insensitive
        ({"actions": ["*"], "notActions": CONTRIBUTOR_NOT}, False),  # Contributor
        ({"actions": ["*/read"], "notActions": []}, False),  # a reader
        ({"actions": ["Microsoft.Authorization/roleAssignments/*"], "notActions": ["*/write"]}, False),
        ({"actions": [], "notActions": [], "dataActions": ["*"]}, False),  # data actions never manage ARM
        ({}, False),
    ],
)
def test_an_entry_allows_role_assignment_writes_by_arms_wildcards(entry: dict[str, Any], allowed: bool) -> None:
    assert permits(entry, ASSIGN_ACTION) is allowed
