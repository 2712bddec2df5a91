"""infra/hooks/postdeploy.sh, with a stand-in `az` that records its calls: it waits for the Event Grid
system key, then deploys eventgrid.bicep with main.bicep's outputs, and never prints the key."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .template import REPO

HOOK = REPO / "infra" / "hooks" / "postdeploy.sh"
ENVIRONMENT = {
    "AZURE_RESOURCE_GROUP": "rg-test",
    "AZURE_FUNCTION_APP_NAME": "func-test",
    "AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME": "evgst-test",
    "AZURE_EVENT_SUBSCRIPTION_NAME": "evgs-secret-near-expiry",
    "EVENTGRID_KEY_DELAY_SECONDS": "0",
}
# Signed in unless $SIGNED_OUT=1. Answers `az functionapp keys list ... --query 'systemKeys.eventgrid_extension != null'` with "false"
# until the call number $KEY_AFTER, then "true"; records every call, one per line.
FAKE_AZ = """#!/bin/sh
echo "$*" >> "$AZ_LOG"
if [ "$1 $2" = "account show" ]; then exit "${SIGNED_OUT:-0}"; fi
if [ "$1 $2 $3" = "functionapp keys list" ]; then
  calls=$(grep -c '^functionapp keys list' "$AZ_LOG")
  if [ "$calls" -ge "$KEY_AFTER" ]; then echo "${TRUE:-true}"; else echo "${FALSE:-false}"; fi
fi
"""


def run_hook(tmp_path: Path, key_after: int, **overrides: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "az"
    fake.write_text(FAKE_AZ, encoding="utf-8")
    fake.chmod(0o755)
    log = tmp_path / "az.log"
    env = {
        **os.environ,
        **ENVIRONMENT,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "AZ_LOG": str(log),
        "KEY_AFTER": str(key_after),
        **overrides,
    }
    completed = subprocess.run(
        [shutil.which("sh") or "/bin/sh", str(HOOK)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
        cwd=REPO,
    )
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return completed, calls


@pytest.mark.parametrize("words", [("true", "false"), ("True", "False")])  # as the CLI's tsv may print them
def test_waits_for_the_key_then_deploys_the_subscription(tmp_path: Path, words: tuple[str, str]) -> None:
    completed, calls = run_hook(tmp_path, key_after=3, TRUE=words[0], FALSE=words[1])
    assert completed.returncode == 0, completed.stderr
    assert [c.split(" --")[0] for c in calls] == ["account show"] + ["functionapp keys list"] * 3 + [
        "deployment group create"
    ]
    deploy = calls[-1]
    assert f"--template-file {REPO}/infra/hooks/../eventgrid.bicep" in deploy
    assert "--resource-group rg-test" in deploy
    for argument in (
        "functionAppName=func-test",
        "systemTopicName=evgst-test",
        "eventSubscriptionName=evgs-secret-near-expiry",
    ):
        assert argument in deploy
    assert "eventgrid_extension != null" in calls[1]  # asks whether the key exists, never for the key


def test_gives_up_when_the_key_never_appears(tmp_path: Path) -> None:
    completed, calls = run_hook(tmp_path, key_after=99, EVENTGRID_KEY_ATTEMPTS="3")
    assert completed.returncode == 1
    assert "no eventgrid_extension system key on func-test after 3 tries" in completed.stderr
    assert not any(c.startswith("deployment") for c in calls)


@pytest.mark.parametrize("missing", sorted(k for k in ENVIRONMENT if k.startswith("AZURE_")))
def test_refuses_to_run_outside_azd(tmp_path: Path, missing: str) -> None:
    completed, calls = run_hook(tmp_path, key_after=1, **{missing: ""})
    assert completed.returncode != 0
    assert "through azd" in completed.stderr
    assert calls == []


def test_stops_when_the_azure_cli_is_signed_out(tmp_path: Path) -> None:
    completed, calls = run_hook(tmp_path, key_after=1, SIGNED_OUT="1")
    assert completed.returncode == 1
    assert "run az login" in completed.stderr
    assert calls == ["account show --output none"]
