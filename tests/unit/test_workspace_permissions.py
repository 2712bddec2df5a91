"""ARM's action wildcards as ArmWorkspaces.may_assign_roles reads a permissions list entry (shared/adapters/workspaces.py),
and the roles a delegation's condition lets its holder assign (shared/usecases/workspace_access.py)."""

from __future__ import annotations

from typing import Any

import pytest

from shared.adapters.workspaces import ASSIGN_ACTION, permits
from shared.usecases.workspace_access import CONDITION, condition_allows

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


READER = "8d289c81-5878-46d4-8554-54e1e3d8b5cb"  # Microsoft Sentinel Reader
RESPONDER = "3e150937-b8fe-4cfb-8069-0eaf05ecd056"  # Microsoft Sentinel Responder


@pytest.mark.parametrize(
    ("condition", "role", "allows"),
    [
        (None, RESPONDER, True),  # no condition: ARM's permissions list decides
        ("", RESPONDER, True),
        (CONDITION.format(roles=f"{READER}, {RESPONDER}"), RESPONDER, True),
        (CONDITION.format(roles=READER), RESPONDER, False),
        (CONDITION.format(roles=READER.upper()), READER, True),  # GUIDs compare case-insensitively
        # Another shape (a single GuidEquals, an attribute of the principal): not read here, left to ARM.
        ("@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] GuidEquals " + READER, RESPONDER, None),
        ("@Principal[Microsoft.Directory/CustomSecurityAttributes/Id:Team] StringEquals 'soc'", RESPONDER, None),
        # Roles it forbids, not roles it allows: not an allow-list, so ARM judges.
        (
            "!(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {"
            f"{READER}}})",
            RESPONDER,
            None,
        ),
    ],
)
def test_a_condition_allows_the_roles_its_assign_clause_names(condition: str | None, role: str, allows: bool) -> None:
    assert condition_allows(condition, role) is allows
