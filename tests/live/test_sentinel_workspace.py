"""A Sentinel registration with its workspace: the app gets the Sentinel role on the customer's workspace, proven
by a query as the app, its workspace id and name read by a consumer through their references, and the role removed
on offboarding.

Needs LIVE_SENTINEL_WORKSPACE: the resource id of a Log Analytics workspace in the test tenant's subscription whose
admin granted what docs/sentinel.md asks (the stand-in's world has one). Skipped otherwise, saying so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.live.target import REFERENCE, Target, World

SENTINEL = "sentinel"


@pytest.fixture(scope="module")
async def onboarded(target: Target, world: World) -> AsyncIterator[dict[str, Any]]:
    if world.sentinel_workspace is None:
        pytest.skip("set LIVE_SENTINEL_WORKSPACE to a workspace whose admin granted what docs/sentinel.md asks")
    answers = await target.onboard(world.tenant, SENTINEL, {"workspace": {"resourceId": world.sentinel_workspace}})
    assert answers[-1].status in (200, 201), str(answers[-1])
    yield answers[-1].body
    assert not await target.cleanup([(world.tenant, SENTINEL)])


async def test_the_app_holds_the_sentinel_role_proven_by_a_query_and_its_workspace_is_referenced(
    onboarded: dict[str, Any], world: World
) -> None:
    workspace = onboarded["workspace"]
    assert workspace["resourceId"].lower() == str(world.sentinel_workspace).lower()
    assert workspace["assigned"] is True and workspace["proven"] is True and workspace["role"] == "reader"
    references = onboarded["keyVaultReferences"]
    assert REFERENCE.fullmatch(references["workspaceId"]) and REFERENCE.fullmatch(references["workspaceName"])
    if world.consumer is not None:  # over HTTP the suite holds no vault access
        value, _ = world.consumer.read(references["workspaceId"])
        assert value == workspace["workspaceId"]


async def test_offboarding_removes_the_sentinel_role(onboarded: dict[str, Any], target: Target, world: World) -> None:
    answer = await target.delete(world.tenant, SENTINEL)
    assert answer.status == 200 and answer.body["workspaceRole"] == "removed", str(answer)
    again = await target.delete(world.tenant, SENTINEL)
    assert again.status == 200 and again.body.get("workspaceRole") in (None, "absent"), str(again)
