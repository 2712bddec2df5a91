"""Crash at every step: a real process SIGKILLed after each change it makes (and at random moments),
then the same operation run again must converge, with nothing of another registration touched."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = "sentinel"  # two permissions on two resource APIs: every step is exercised
ONBOARD_EVENTS = 8  # application, service principal, 2 grants, secret created, 3 secrets stored
ROTATE_EVENTS = 4  # secret created, stored, rotated, retired
OFFBOARD_EVENTS = 4  # application deleted, 3 secrets deleted
RANDOM_POINTS = 2


def run(stand_in: StandIn, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **stand_in.app_settings(), NAME_PREFIX=prefix, ORPHAN_GRACE_MINUTES="0")
    env.pop("AzureWebJobsStorage", None)  # a killed holder's blob lease would block the rerun for 60 s
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.crash_runner", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def cli(stand_in: StandIn, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **stand_in.app_settings(), NAME_PREFIX=prefix, ORPHAN_GRACE_MINUTES="0")
    env.pop("AzureWebJobsStorage", None)
    return subprocess.run(
        [sys.executable, "-m", "shared.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


def registration(stand_in: StandIn, prefix: str) -> tuple[list[dict[str, object]], dict[str, object]]:
    state = stand_in.state()
    tenant = state["tenants"][stand_in.home_tenant_id]
    apps = [a for a in tenant["applications"] if a["uniqueName"] == f"{prefix}-{INTEGRATION}"]
    secrets = {n: v for n, v in state["vault"]["secrets"].items() if n.startswith(prefix)}
    return apps, secrets


def stored_secret_roles(stand_in: StandIn, prefix: str) -> set[str] | None:
    """The roles a token obtained with the stored secret carries (None if it does not authenticate)."""
    name = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-client-secret"
    os.environ.update(stand_in.identity_env())
    vault = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=stand_in.ca_bundle)  # fmt: skip
    secret = vault.get_secret(name)
    credential = ClientSecretCredential(
        stand_in.home_tenant_id, (secret.properties.tags or {})["client-id"], str(secret.value),
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    try:
        roles: set[str] = set()
        for scope in ("https://api.loganalytics.io/.default", "https://graph.microsoft.com/.default"):
            token = credential.get_token(scope).token
            roles |= set(jwt.decode(token, options={"verify_signature": False}).get("roles", []))
        return roles
    except ClientAuthenticationError:
        return None


def assert_converged(stand_in: StandIn, prefix: str) -> None:
    apps, secrets = registration(stand_in, prefix)
    assert len(apps) == 1, apps
    assert len(secrets) == 3
    assert stored_secret_roles(stand_in, prefix) == {"Data.Read", "SecurityEvents.Read.All"}  # grants == the profile
    service_principals = stand_in.state()["tenants"][stand_in.home_tenant_id]["servicePrincipals"]
    assert [sp["appId"] for sp in service_principals].count(apps[0]["appId"]) == 1
    # No orphan: every credential left on the app is the stored one, or the one the stored version names
    # as its predecessor (still in its grace period); anything else would be a secret nobody holds.
    name = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-client-secret"
    latest_tags = secrets[name]["versions"][-1]["tags"]  # type: ignore[index]
    accounted_for = {latest_tags["key-id"], latest_tags.get("previous-key-id")}
    assert latest_tags["key-id"] in apps[0]["passwordKeyIds"]  # type: ignore[operator]
    assert set(apps[0]["passwordKeyIds"]) <= accounted_for, (apps[0]["passwordKeyIds"], latest_tags)  # type: ignore[call-overload]


CASES = (
    [("onboard", "after-event", n) for n in range(1, ONBOARD_EVENTS + 1)]
    + [("rotate", "after-event", n) for n in range(1, ROTATE_EVENTS + 1)]
    + [("offboard", "after-event", n) for n in range(1, OFFBOARD_EVENTS + 1)]
    + [
        (op, "after-ms", ms)
        for op in ("onboard", "rotate", "offboard")
        for ms in random.Random(7).sample(range(50, 900), RANDOM_POINTS)
    ]
)


@pytest.mark.parametrize(("operation", "mode", "value"), CASES)
def test_a_killed_operation_converges_when_run_again(stand_in: StandIn, operation: str, mode: str, value: int) -> None:
    prefix = f"k{uuid.uuid4().hex[:10]}"
    tenant = stand_in.home_tenant_id
    neighbour = f"n{uuid.uuid4().hex[:10]}"
    assert cli(stand_in, neighbour, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0
    neighbour_before = registration(stand_in, neighbour)
    if operation != "onboard":
        assert cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0

    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, mode, str(value))
    assert killed.returncode in (-signal.SIGKILL, 0), killed.stderr[-2000:]

    # The caller retries the same operation; a follow-up onboard/rotate sweeps up what is left.
    again = cli(stand_in, prefix, *{
        "onboard": ["onboard"], "rotate": ["rotate", "--retire-immediately"], "offboard": ["offboard", "--purge-application"],
    }[operation], "--tenant", tenant, "--integration", INTEGRATION)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    if operation == "offboard":
        apps, secrets = registration(stand_in, prefix)
        assert apps == [] and secrets == {}
    else:
        if operation == "onboard":  # a second pass removes orphans (ORPHAN_GRACE_MINUTES=0)
            assert cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0
        assert_converged(stand_in, prefix)
    assert registration(stand_in, neighbour) == neighbour_before  # nothing of another registration touched
