"""infra/hooks/postdeploy.sh, with a stand-in `az` (fake_az.py): it waits for the Event Grid system key,
then deploys eventgrid.bicep with main.bicep's outputs, pins every call to the azd environment's
subscription, and never prints the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from .hook_runner import ENVIRONMENT, OTHER_SUBSCRIPTION, OTHER_TENANT, SUBSCRIPTION, jmespath_ast, run_hook, world
from .template import REPO

HOOK = "postdeploy.sh"
pytestmark = pytest.mark.usefixtures("infra_tools")  # the stand-in az runs under .venv-infra


def key_query(call: list[str]) -> str:
    return call[call.index("--query") + 1]


def test_waits_for_the_key_then_deploys_the_subscription(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(key_after=3))
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.commands == ["account show"] + ["functionapp keys list"] * 3 + ["deployment group create"]
    deploy = run.state["deployments"][0]
    assert deploy["--template-file"] == [f"{REPO}/infra/hooks/../eventgrid.bicep"]
    assert deploy["--resource-group"] == ["rg-test"]
    assert deploy["--parameters"] == [
        "functionAppName=func-test",
        "systemTopicName=evgst-test",
        "eventSubscriptionName=evgs-secret-near-expiry",
    ]
    assert "k3y" not in run.completed.stdout + run.completed.stderr  # asks whether the key exists, never for it


def test_every_call_is_pinned_to_the_azd_environments_subscription(tmp_path: Path) -> None:
    """The CLI's default subscription is another one (hook_runner.world): a call without --subscription
    would read the keys of, and deploy into, whatever `az account set` last chose."""
    run = run_hook(HOOK, tmp_path, world(key_after=2))
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.calls
    for call in run.calls:
        assert call[call.index("--subscription") + 1] == SUBSCRIPTION, call


def test_the_key_query_compares_with_the_null_literal() -> None:
    """JMESPath's null is `null` in backquotes; a bare null is a field named "null"
    (https://jmespath.org/specification.html#literal-expressions)."""
    script = (REPO / "infra" / "hooks" / HOOK).read_text(encoding="utf-8")
    query = script.split("--query '", 1)[1].split("'", 1)[0]
    tree = jmespath_ast(query)
    assert tree["type"] == "comparator" and tree["value"] == "ne", tree
    assert tree["children"][1] == {"type": "literal", "value": None, "children": []}, tree


def test_a_bare_null_would_be_a_field() -> None:
    """What the test above tells apart, shown on JMESPath itself."""
    tree = jmespath_ast("systemKeys.eventgrid_extension != null")
    assert tree["children"][1] == {"type": "field", "value": "null", "children": []}


def test_runs_as_on_windows_bash_and_the_windows_clis_line_ends(tmp_path: Path) -> None:
    """On Windows azd runs the hook with bash, and under Git Bash the Windows CLI ends lines with CRLF
    (https://github.com/Azure/azure-cli/issues/33385): "true\\r" must still read as true."""
    run = run_hook(HOOK, tmp_path, world(key_after=2, crlf=True), interpreter="bash", EVENTGRID_KEY_ATTEMPTS="3")
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.commands[-1] == "deployment group create"


def test_gives_up_when_the_key_never_appears(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(key_after=99), EVENTGRID_KEY_ATTEMPTS="3")
    assert run.completed.returncode == 1
    assert "no eventgrid_extension system key on func-test after 3 tries" in run.completed.stderr
    assert "deployment group create" not in run.commands


@pytest.mark.parametrize("missing", sorted(k for k in ENVIRONMENT if k.startswith("AZURE_") and k != "AZURE_TENANT_ID"))
def test_refuses_to_run_outside_azd(tmp_path: Path, missing: str) -> None:
    run = run_hook(HOOK, tmp_path, world(), **{missing: ""})
    assert run.completed.returncode != 0
    assert "through azd" in run.completed.stderr
    assert run.calls == []


def test_stops_when_the_azure_cli_is_signed_out(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(signed_out=True))
    assert run.completed.returncode == 1
    assert "run az login" in run.completed.stderr
    assert run.commands == ["account show"]


def test_stops_when_the_cli_cannot_see_the_subscription(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(subscriptions={OTHER_SUBSCRIPTION: OTHER_TENANT}))
    assert run.completed.returncode == 1
    assert f"cannot see subscription {SUBSCRIPTION}" in run.completed.stderr
    assert run.commands == ["account show"]
