"""infra/hooks/postprovision.sh, with a stand-in `az` (fake_az.py): on a first `azd up` the managed identity
and the provisioner app are minutes old, and Entra refuses what references them until it has replicated
them. The hook must end with every Graph role granted and the provisioner trusting the identity, without
the user running anything twice; and running it again must change nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from .checks import check_hooks
from .hook_runner import (
    APP_ROLES,
    ENVIRONMENT,
    GRAPH_SP,
    ISSUER,
    OTHER_TENANT,
    PRINCIPAL,
    PROVISIONER,
    SUBSCRIPTION,
    TENANT,
    run_hook,
    world,
)
from .template import copy_template, load

HOOK = "postprovision.sh"
GRAPH = "https://graph.microsoft.com/v1.0"
ROLES = ENVIRONMENT["GRAPH_APP_ROLES"].split()
GRANT = f"rest POST {GRAPH}/servicePrincipals/{GRAPH_SP}/appRoleAssignedTo"
TRUST = f"rest PATCH {GRAPH}/applications(uniqueName='{PROVISIONER}')/federatedIdentityCredentials(name='function-managed-identity')"
pytestmark = pytest.mark.usefixtures("infra_tools")  # the stand-in az runs under .venv-infra


def granted(state: dict[str, object]) -> list[str]:
    ids = {role_id: value for value, role_id in APP_ROLES.items()}
    assignments = state.get("assignments")
    assert isinstance(assignments, list)
    for assignment in assignments:
        assert assignment["principalId"] == PRINCIPAL and assignment["resourceId"] == GRAPH_SP, assignment
    return sorted(ids[a["appRoleId"]] for a in assignments)


def test_a_first_run_waits_out_replication_and_grants_everything(tmp_path: Path) -> None:
    """Entra answers "Not a valid reference update" to grants for an identity created moments earlier
    (https://github.com/microsoftgraph/msgraph-bicep-types/issues/193) and 404 to a credential on a new app
    (msgraph-bicep-types issue 271): both are waited out, in one run."""
    run = run_hook(
        HOOK,
        tmp_path,
        world(grant_replication_failures=3, credential_replication_failures=2, assignments_unreadable=True),
    )
    assert run.completed.returncode == 0, run.completed.stderr
    assert granted(run.state) == sorted(ROLES)
    assert run.commands.count(GRANT) == len(ROLES) + 3
    assert run.commands.count(TRUST) == 3
    assert run.completed.stdout.count("Entra has not replicated the new objects yet") == 5


def test_the_provisioner_trusts_the_identity(tmp_path: Path) -> None:
    """issuer = this tenant, subject = the identity's object id, audience api://AzureADTokenExchange
    (shared/adapters/identity.py), as an upsert by name (Prefer: create-if-missing)."""
    run = run_hook(HOOK, tmp_path, world())
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.state["credentials"] == {
        PROVISIONER: {
            "function-managed-identity": {
                "issuer": ISSUER,
                "subject": PRINCIPAL,
                "audiences": ["api://AzureADTokenExchange"],
                "description": "The tenant onboarding function app's user-assigned managed identity",
            }
        }
    }


@pytest.mark.parametrize(
    ("graph_root", "audience"),
    [
        ("https://graph.microsoft.us", "api://AzureADTokenExchangeUSGov"),
        ("https://dod-graph.microsoft.us", "api://AzureADTokenExchangeUSGov"),
        ("https://microsoftgraph.chinacloudapi.cn", "api://AzureADTokenExchangeChina"),
    ],
)
def test_in_a_national_cloud_it_calls_that_clouds_graph_and_trusts_its_exchange_audience(
    tmp_path: Path, graph_root: str, audience: str
) -> None:
    """main.bicep's GRAPH_URL and FEDERATION_AUDIENCE: every call names the cloud's Graph as its resource (the
    Azure CLI has no DoD Graph of its own), and the credential trusts the cloud's exchange audience."""
    run = run_hook(HOOK, tmp_path, world(graph_root=graph_root), GRAPH_URL=graph_root, FEDERATION_AUDIENCE=audience)
    assert run.completed.returncode == 0, run.completed.stderr
    assert granted(run.state) == sorted(ROLES)
    assert run.state["credentials"][PROVISIONER]["function-managed-identity"]["audiences"] == [audience]
    rests = [call for call in run.calls if call[0] == "rest"]
    assert rests and all(call[call.index("--resource") + 1] == graph_root for call in rests)


def test_in_china_the_provisioner_trusts_both_hosts_of_its_entra(tmp_path: Path) -> None:
    """Bicep's loginEndpoint there is login.chinacloudapi.cn; tokens may name login.partner.microsoftonline.cn."""
    china = "https://microsoftgraph.chinacloudapi.cn"
    run = run_hook(
        HOOK, tmp_path, world(graph_root=china), GRAPH_URL=china, FEDERATION_AUDIENCE="api://AzureADTokenExchangeChina",
        FEDERATED_CREDENTIAL_ISSUER=f"https://login.chinacloudapi.cn/{TENANT}/v2.0",
    )  # fmt: skip
    assert run.completed.returncode == 0, run.completed.stderr
    credentials = run.state["credentials"][PROVISIONER]
    assert {name: c["issuer"] for name, c in credentials.items()} == {
        "function-managed-identity": f"https://login.chinacloudapi.cn/{TENANT}/v2.0",
        "function-managed-identity-partner": f"https://login.partner.microsoftonline.cn/{TENANT}/v2.0",
    }
    assert all(c["audiences"] == ["api://AzureADTokenExchangeChina"] for c in credentials.values())


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GRAPH_URL", "https://graph.microsoft.com.evil.example"),
        ("GRAPH_URL", "https://graph.microsoft.de"),
        ("FEDERATION_AUDIENCE", "api://AzureADTokenExchangeGermany"),
        ("FEDERATION_AUDIENCE", 'api://AzureADTokenExchange", "x'),
    ],
)
def test_a_graph_or_audience_that_is_not_a_clouds_is_refused_before_any_call(
    tmp_path: Path, variable: str, value: str
) -> None:
    run = run_hook(HOOK, tmp_path, world(), **{variable: value})
    assert run.completed.returncode != 0 and variable in run.completed.stderr
    assert run.calls == []


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    first = run_hook(HOOK, tmp_path, world())
    assert first.completed.returncode == 0, first.completed.stderr
    second = run_hook(HOOK, tmp_path, world())
    assert second.completed.returncode == 0, second.completed.stderr
    assert GRANT not in second.commands  # every role read back as held
    assert second.state["assignments"] == first.state["assignments"]
    assert second.state["credentials"] == first.state["credentials"]
    assert second.completed.stdout.count("the managed identity holds") == len(ROLES)


def test_already_exists_counts_as_granted(tmp_path: Path) -> None:
    """When the read of what the identity holds fails (it lags, or the identity is not readable yet),
    Graph's duplicate-grant answer means the role is there."""
    first = run_hook(HOOK, tmp_path, world())
    assert first.completed.returncode == 0, first.completed.stderr
    again = run_hook(HOOK, tmp_path, world(assignments_unreadable=True))
    assert again.completed.returncode == 0, again.completed.stderr
    assert again.commands.count(GRANT) == len(ROLES)
    assert granted(again.state) == sorted(ROLES)


def test_only_the_roles_azd_passes_and_never_a_delegated_one(tmp_path: Path) -> None:
    run = run_hook(
        HOOK, tmp_path, world(), GRAPH_APP_ROLES="Application.ReadWrite.OwnedBy AppRoleAssignment.ReadWrite.All"
    )
    assert run.completed.returncode == 0, run.completed.stderr
    assert granted(run.state) == ["AppRoleAssignment.ReadWrite.All", "Application.ReadWrite.OwnedBy"]

    delegated = run_hook(HOOK, tmp_path / "delegated", world(), GRAPH_APP_ROLES="User.Read")
    assert delegated.completed.returncode == 1
    assert "offers no application permission User.Read" in delegated.completed.stderr
    assert GRANT not in delegated.commands


def test_every_call_is_pinned_to_the_azd_environments_subscription(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(grant_replication_failures=1, credential_replication_failures=1))
    assert run.completed.returncode == 0, run.completed.stderr
    assert run.calls
    for call in run.calls:
        assert call[call.index("--subscription") + 1] == SUBSCRIPTION, call


def test_refuses_a_cli_that_reaches_graph_in_another_tenant(tmp_path: Path) -> None:
    """`az rest` takes Graph tokens in the tenant of the CLI's default account, whatever --subscription says:
    granting there would change the wrong directory."""
    run = run_hook(HOOK, tmp_path, world(graph_tenant=OTHER_TENANT))
    assert run.completed.returncode == 1
    assert f"in tenant '{OTHER_TENANT}', but azd deployed to tenant {TENANT}" in run.completed.stderr
    assert f"az login --tenant {TENANT}" in run.completed.stderr
    assert not [c for c in run.commands if c.startswith(("rest POST", "rest PATCH"))]


def test_gives_up_loudly_when_replication_never_ends(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(grant_replication_failures=99), GRAPH_REPLICATION_ATTEMPTS="3")
    assert run.completed.returncode == 1
    assert "granting Application.ReadWrite.OwnedBy: Entra had not replicated the new objects after 3 tries" in (
        run.completed.stderr
    )
    assert "Not a valid reference update" in run.completed.stderr
    assert run.commands.count(GRANT) == 3


def test_any_other_refusal_stops_at_once(tmp_path: Path) -> None:
    refusal = ["Forbidden", "Authorization_RequestDenied", "Insufficient privileges to complete the operation."]
    run = run_hook(HOOK, tmp_path, world(grant_error=refusal))
    assert run.completed.returncode == 1
    assert run.commands.count(GRANT) == 1
    assert "Insufficient privileges" in run.completed.stderr
    assert "Privileged Role Administrator or Global Administrator" in run.completed.stderr


def test_no_provisioner_no_credential(tmp_path: Path) -> None:
    run = run_hook(HOOK, tmp_path, world(), PROVISIONER_UNIQUE_NAME="", FEDERATED_CREDENTIAL_ISSUER="")
    assert run.completed.returncode == 0, run.completed.stderr
    assert not [c for c in run.commands if c.startswith("rest PATCH")]
    assert granted(run.state) == sorted(ROLES)


def test_runs_as_on_windows_bash_and_the_windows_clis_line_ends(tmp_path: Path) -> None:
    """On Windows azd runs the hook with bash, and under Git Bash the Windows CLI ends lines with CRLF
    (https://github.com/Azure/azure-cli/issues/33385)."""
    run = run_hook(HOOK, tmp_path, world(crlf=True, grant_replication_failures=1), interpreter="bash")
    assert run.completed.returncode == 0, run.completed.stderr
    assert granted(run.state) == sorted(ROLES)
    assert PROVISIONER in run.state["credentials"]


@pytest.mark.parametrize(
    "missing", ["AZURE_SUBSCRIPTION_ID", "AZURE_TENANT_ID", "MANAGED_IDENTITY_PRINCIPAL_ID", "GRAPH_APP_ROLES"]
)
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


def test_a_hook_that_is_not_executable_is_reported(tmp_path: Path) -> None:
    """On Linux and macOS azd runs the script as a command (Azure/azure-dev, cli/azd/pkg/tools/bash/bash.go)."""
    root = copy_template(tmp_path / "copy")
    (root / "infra" / "hooks" / HOOK).chmod(0o644)
    template = load([root])[root]
    scripts = {
        f"hooks/{name}": (root / "infra" / "hooks" / name).read_text("utf-8") for name in (HOOK, "postdeploy.sh")
    }
    assert check_hooks(template, scripts) == [
        f"infra/hooks/{HOOK} must be executable: azd runs it as a command on Linux and macOS"
    ]
