"""Run an azd hook from infra/hooks/ as azd would (its environment = main.bicep's outputs), with the Azure
CLI replaced by tests/infra/fake_az.py, and read back what it did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .template import INFRA_PYTHON, REPO

FAKE_AZ = Path(__file__).with_name("fake_az.py")
SUBSCRIPTION = "5b3c1d2e-0000-4000-8000-00000000a001"
OTHER_SUBSCRIPTION = "5b3c1d2e-0000-4000-8000-00000000a002"
TENANT = "72f988bf-0000-4000-8000-0000000000aa"
OTHER_TENANT = "72f988bf-0000-4000-8000-0000000000bb"
PRINCIPAL = "0e5c2a4f-1111-4000-8000-000000000001"
GRAPH_SP = "9d4f1c3a-2222-4000-8000-000000000002"
# Microsoft Graph's application permissions as its service principal lists them (ids as the Graph
# permissions reference lists them: https://learn.microsoft.com/graph/permissions-reference), plus one that is delegated only, which must never be picked.
APP_ROLES = {
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "Policy.Read.All": "246dd0d5-5bd0-4def-940b-0421030a5b68",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
}
DELEGATED_ONLY = {"value": "User.Read", "id": "e1fe6dd8-ba31-4d61-89e7-88639da4683d", "allowedMemberTypes": ["User"]}
PROVISIONER = "tenant-onboarding-provisioner-abc123"
ISSUER = f"https://login.microsoftonline.com/{TENANT}/v2.0"

# What azd passes a hook: the azd environment, i.e. main.bicep's outputs (and AZURE_ENV_NAME etc.).
ENVIRONMENT = {
    "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION,
    "AZURE_TENANT_ID": TENANT,
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_FUNCTION_APP_NAME": "func-test",
    "AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME": "evgst-test",
    "AZURE_EVENT_SUBSCRIPTION_NAME": "evgs-secret-near-expiry",
    "MANAGED_IDENTITY_PRINCIPAL_ID": PRINCIPAL,
    "GRAPH_APP_ROLES": "Application.ReadWrite.OwnedBy Application.Read.All AppRoleAssignment.ReadWrite.All Policy.Read.All",
    "PROVISIONER_UNIQUE_NAME": PROVISIONER,
    "FEDERATED_CREDENTIAL_ISSUER": ISSUER,
    "EVENTGRID_KEY_DELAY_SECONDS": "0",
    "GRAPH_REPLICATION_DELAY_SECONDS": "0",
}


def world(**changes: Any) -> dict[str, Any]:
    """A tenant where the CLI is signed in to the azd environment's subscription and tenant."""
    base: dict[str, Any] = {
        "subscriptions": {SUBSCRIPTION: TENANT, OTHER_SUBSCRIPTION: OTHER_TENANT},
        "default_subscription": OTHER_SUBSCRIPTION,  # `az account set` chose another one: the hooks must not care
        "graph_tenant": TENANT,
        "graph_sp": GRAPH_SP,
        "app_roles": [
            {"value": value, "id": role_id, "allowedMemberTypes": ["Application"]}
            for value, role_id in APP_ROLES.items()
        ]
        + [DELEGATED_ONLY],
        "principal_id": PRINCIPAL,
        "applications": [PROVISIONER],
        "key_after": 1,
    }
    return {**base, **changes}


@dataclass(frozen=True)
class HookRun:
    completed: subprocess.CompletedProcess[str]
    calls: list[list[str]]  # every az call's arguments, in order
    state: dict[str, Any]  # what the fake's world holds afterwards

    @property
    def commands(self) -> list[str]:
        """Each call's command words and, for `az rest`, its method and URL."""
        summary = []
        for call in self.calls:
            words = []
            for arg in call:
                if arg.startswith("--"):
                    break
                words.append(arg)
            if words == ["rest"]:
                words += [call[call.index("--method") + 1].upper(), call[call.index("--url") + 1]]
            summary.append(" ".join(words))
        return summary


def run_hook(hook: str, folder: Path, the_world: dict[str, Any], interpreter: str = "sh", **overrides: str) -> HookRun:
    """Run infra/hooks/{hook} once in `folder` (reuse the folder to run it again on the same world), as
    azd does: with `sh` on Linux and macOS, with `bash` on Windows (Azure/azure-dev,
    cli/azd/pkg/tools/bash/bash.go)."""
    folder.mkdir(parents=True, exist_ok=True)
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "az"
    fake.write_text(f'#!/bin/sh\nexec "{INFRA_PYTHON}" "{FAKE_AZ}" "$@"\n', encoding="utf-8")
    fake.chmod(0o755)
    (folder / "world.json").write_text(json.dumps(the_world), encoding="utf-8")
    (folder / "calls.jsonl").unlink(missing_ok=True)  # this run's calls only; state.json carries over
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "GRAPH_", "EVENTGRID_"))},
        **ENVIRONMENT,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_AZ_DIR": str(folder),
        **overrides,
    }
    completed = subprocess.run(
        [shutil.which(interpreter) or f"/bin/{interpreter}", str(REPO / "infra" / "hooks" / hook)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=REPO,
    )
    log = folder / "calls.jsonl"
    calls = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()] if log.exists() else []
    state_file = folder / "state.json"
    state = json.loads(state_file.read_text(encoding="utf-8")) if state_file.exists() else {}
    return HookRun(completed, calls, state)


def jmespath_ast(query: str) -> Any:
    """The parse tree the JMESPath library (the one the Azure CLI evaluates --query with) makes of query."""
    completed = subprocess.run(
        [
            str(INFRA_PYTHON),
            "-c",
            "import json, sys, jmespath; print(json.dumps(jmespath.compile(sys.argv[1]).parsed))",
            query,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(completed.stdout)
