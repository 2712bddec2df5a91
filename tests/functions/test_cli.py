"""The operator CLI: as a local process (exit codes, no secret on screen) and in-process against one stand-in."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from emulator import local_cli
from emulator.launcher import StandIn
from shared.entrypoints.cli import EXIT_FAILED, EXIT_OK, EXIT_PENDING, EXIT_USAGE, main
from tests.functions.conftest import NORTHWIND

DEFENDER_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"

REPO = Path(__file__).resolve().parents[2]
STEPS = ("resolve", "application", "service principal", "consent", "client secret", "verify")
REFERENCE_PREFIX = "@Microsoft.KeyVault(SecretUri="
ENTRA_SECRET_MARK = "Q~"  # every Entra client secret (and the stand-in's) carries it after a short prefix


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONIOENCODING="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "emulator.local_cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )


# --- as a process: each emulator.local_cli run starts and stops its own stand-in ---


def test_catalog_lists_every_integration() -> None:
    done = run_cli("catalog")
    assert done.returncode == EXIT_OK, done.stderr
    listed = {line.split()[0] for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert listed == {"m365-defender", "defender-endpoint", "defender-endpoint-live-response", "sentinel"}


def test_onboard_local_json_answers_with_references_only() -> None:
    done = run_cli("onboard", "--integration", "m365-defender", "--json")
    assert done.returncode == EXIT_OK, done.stderr
    result = json.loads(done.stdout)  # progress went to stderr: stdout is the result alone
    assert result["outcome"] == "created"
    uuid.UUID(result["application"]["clientId"])
    references = result["keyVaultReferences"]
    assert set(references) == {"clientId", "tenantId", "clientSecret"}
    assert all(str(ref).startswith(REFERENCE_PREFIX) for ref in references.values())
    assert "application" in done.stderr
    assert ENTRA_SECRET_MARK not in done.stdout + done.stderr


def test_onboard_local_shows_every_step_and_never_a_secret() -> None:
    done = run_cli("onboard", "--integration", "m365-defender")
    assert done.returncode == EXIT_OK, done.stderr
    for step in STEPS:
        assert f"✓ {step} " in done.stdout
    assert "created: m365-defender" in done.stdout
    assert done.stdout.count(REFERENCE_PREFIX) == 3
    assert ENTRA_SECRET_MARK not in done.stdout + done.stderr
    assert done.stderr == ""  # the demo's output is the whole story: no warnings beside it


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "not-a-guid", "--integration", "m365-defender"], "must be a GUID"),
        (["--tenant", str(uuid.uuid4()), "--integration", "no-such-thing"], "no integration 'no-such-thing'"),
    ],
)
def test_bad_arguments_exit_2(args: list[str], message: str) -> None:
    done = run_cli("onboard", *args)
    assert done.returncode == EXIT_USAGE
    assert message in done.stderr
    assert done.stdout == ""


# --- in-process: arguments are checked before anything starts ---


def test_arguments_are_checked_before_the_stand_in_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def refuse(*args: Any, **kwargs: Any) -> StandIn:
        raise AssertionError("the stand-in must not start for a rejected command")

    monkeypatch.setattr("emulator.launcher.start_stand_in", refuse)
    assert (
        local_cli.main(["status", "--tenant", "00000000-0000-0000-0000-000000000000", "--integration", "sentinel"])
        == EXIT_USAGE
    )
    assert local_cli.main(["onboard", "--integration", "sentinel", "--secret-lifetime-days", "0"]) == EXIT_USAGE
    assert main(["onboard", "--integration", "sentinel"]) == EXIT_USAGE  # --tenant: no stand-in defaults it
    assert "--tenant is required" in capsys.readouterr().err


def test_missing_settings_exit_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KEY_VAULT_URL", raising=False)
    assert main(["status", "--tenant", str(uuid.uuid4()), "--integration", "sentinel"]) == EXIT_USAGE
    assert "KEY_VAULT_URL" in capsys.readouterr().err


# --- in-process against one stand-in, so state lasts from one command to the next ---


@pytest.fixture
def app_env(clean_faults: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """The settings the app gets in Azure, pointed at the session's stand-in (not local_cli: state must outlive a
    command), with a name prefix of its own so no other test's apps or secrets are in the way."""
    for name, value in clean_faults.app_settings().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("NAME_PREFIX", f"cli{uuid.uuid4().hex[:10]}")
    return clean_faults


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_status_reads_back_what_onboard_did(app_env: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    target = ["--tenant", app_env.home_tenant_id, "--integration", "sentinel"]
    code, out, err = run_main(capsys, "status", *target)
    assert code == EXIT_FAILED
    assert "[registration-not-found]" in err

    code, out, err = run_main(capsys, "onboard", *target)
    assert code == EXIT_OK, err
    code, out, _ = run_main(capsys, "onboard", *target)
    assert code == EXIT_OK
    assert "complete: sentinel" in out  # a rerun changes nothing

    code, out, _ = run_main(capsys, "status", *target)
    assert code == EXIT_OK
    assert "✓ Log Analytics API: Data.Read" in out
    assert "drift              none" in out
    code, out, _ = run_main(capsys, "--json", "status", *target)
    state = json.loads(out)
    assert code == EXIT_OK
    assert state["drift"] == [] and state["credential"]["verified"] is True
    assert all(str(ref).startswith(REFERENCE_PREFIX) for ref in state["keyVaultReferences"].values())


def test_pending_exits_3_and_a_rerun_finishes(
    app_env: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A new secret that replicates for longer than the CLI waits: the run stops at verify with 202's meaning.
    monkeypatch.setenv("VERIFY_TIMEOUT_SECONDS", "1")
    app_env.set_faults(password=2500)
    target = ["--tenant", app_env.home_tenant_id, "--integration", "defender-endpoint"]
    code, out, err = run_main(capsys, "onboard", *target)
    assert code == EXIT_PENDING, err
    assert "pending: defender-endpoint" in out
    assert "Run the same command again" in err

    # The rerun waits out the rest of the replication, as a rerun against Azure would.
    monkeypatch.setenv("VERIFY_TIMEOUT_SECONDS", "30")
    code, out, err = run_main(capsys, "--json", "onboard", *target)
    assert code == EXIT_OK, err
    result = json.loads(out)
    assert result["outcome"] in ("updated", "complete") and result["drift"] == []


def test_the_console_script_is_main() -> None:
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["tenant-onboarding"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is main


def test_rotate_one_registration_and_sweep_with_a_dry_run(app_env: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    target = ["--tenant", app_env.home_tenant_id, "--integration", "sentinel"]
    assert run_main(capsys, "onboard", *target)[0] == EXIT_OK

    code, out, err = run_main(capsys, "rotate", *target, "--retire-immediately")
    assert code == EXIT_OK, err
    assert out.startswith("rotated: sentinel") and "retired" in out

    code, out, err = run_main(capsys, "--json", "rotate", "--all", "--dry-run")
    assert code == EXIT_OK, err
    assert json.loads(out)["planned"] == {"ok": 1}

    code, _, err = run_main(
        capsys, "rotate", "--all", "--integration", "sentinel", "--dry-run", "--tenant", app_env.home_tenant_id
    )
    assert code == EXIT_OK
    code, _, err = run_main(capsys, "rotate", *target, "--dry-run")
    assert code == 2 and "--dry-run goes with --all" in err


def test_offboard_removes_and_a_second_run_reports_nothing_left(
    app_env: StandIn, capsys: pytest.CaptureFixture[str]
) -> None:
    target = ["--tenant", app_env.home_tenant_id, "--integration", "sentinel"]
    assert run_main(capsys, "onboard", *target)[0] == EXIT_OK
    code, out, err = run_main(capsys, "offboard", *target)
    assert code == EXIT_OK, err
    assert out.startswith("application  deleted") and out.count("secret       deleted") == 3
    code, out, _ = run_main(capsys, "--json", "offboard", *target)
    assert code == EXIT_OK and json.loads(out)["application"] == "absent"


def test_each_credential_type_through_the_cli(
    app_env: StandIn, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """certificate (Key Vault's), a vendor's certificate from a file, and federated: onboard, status, rotate
    where it applies, offboard."""
    tenant = app_env.home_tenant_id
    certificate = ["--tenant", tenant, "--integration", "sentinel"]
    code, out, err = run_main(capsys, "onboard", *certificate, "--credential-type", "certificate")
    assert code == EXIT_OK, err
    code, out, _ = run_main(capsys, "status", *certificate)
    assert code == EXIT_OK and "certificate, keyId" in out and "client certificate" in out, out
    code, out, err = run_main(capsys, "rotate", *certificate, "--retire-immediately")
    assert code == EXIT_OK and "rotated" in out, out + err
    code, out, _ = run_main(capsys, "offboard", *certificate)
    assert code == EXIT_OK and "certificate  deleted" in out, out

    from tests.functions.test_certificates import VendorCertificate

    now = datetime.now(UTC) + timedelta(seconds=float(app_env.admin("GET", "/clock")["offset_seconds"]))
    pem = tmp_path / "vendor.pem"
    pem.write_text(VendorCertificate(now).pem)
    vendor = ["--tenant", tenant, "--integration", "m365-defender"]
    code, out, err = run_main(capsys, "onboard", *vendor, "--certificate-file", str(pem))
    assert code == EXIT_OK, err
    code, out, _ = run_main(capsys, "status", *vendor)
    assert "supplied by" in out and "vendor certificate" in out, out
    assert run_main(capsys, "offboard", *vendor)[0] == EXIT_OK

    monkeypatch.setenv("CONNECTOR_TRUST_SUBJECT", str(app_env.info["managed_identity_object_id"]))
    federated = ["--tenant", NORTHWIND, "--integration", "defender-endpoint"]
    code, out, _ = run_main(capsys, "onboard", *federated, "--credential-type", "federated")
    assert code == EXIT_PENDING and "consent at" in out and "adminconsent?client_id=" in out, out
    client_id = out.split("adminconsent?client_id=")[1].split()[0]
    roles = ["Alert.Read.All", "Machine.Read.All", "AdvancedQuery.Read.All", "File.Read.All", "Ip.Read.All",
             "Url.Read.All"]  # fmt: skip
    app_env.admin("POST", f"/tenants/{NORTHWIND}/consent", {"appId": client_id, "roles": {DEFENDER_APP_ID: roles}})
    code, out, err = run_main(capsys, "onboard", *federated, "--credential-type", "federated")  # the same again
    assert code == EXIT_OK and "federated" in out, out + err
    code, out, err = run_main(capsys, "onboard", *federated)  # once onboarded, a rerun keeps its type
    assert code == EXIT_OK and "complete" in out, out + err
    code, out, _ = run_main(capsys, "offboard", *federated)
    assert code == EXIT_OK and "customer" in out and client_id in out, out


def test_add_ons_through_the_cli(app_env: StandIn, capsys: pytest.CaptureFixture[str]) -> None:
    """--add-ons names them (on the same app), a run without it keeps them, '' removes them; the catalog, the
    result and status show which permission each add-on brings, and an add-on not offered exits 1."""
    target = ["--tenant", app_env.home_tenant_id, "--integration", "m365-defender"]
    code, out, _ = run_main(capsys, "catalog")
    assert code == EXIT_OK and "add-on defender-xdr:" in out and "add-on live-response:" in out and "high impact" in out
    code, out, err = run_main(capsys, "onboard", *target, "--add-ons", "defender-xdr")
    assert code == EXIT_OK, err
    assert "add-ons            defender-xdr" in out
    code, out, _ = run_main(capsys, "onboard", *target)  # keeps them
    assert code == EXIT_OK and "complete: m365-defender" in out and "add-ons            defender-xdr" in out
    code, out, _ = run_main(capsys, "status", *target)
    assert "✓ Microsoft Threat Protection: Incident.Read.All  (add-on defender-xdr)" in out
    code, out, err = run_main(capsys, "onboard", *target, "--add-ons", "")
    assert code == EXIT_OK, err
    assert "add-ons            none" in out
    code, _, err = run_main(capsys, "onboard", *target, "--add-ons", "no-such-add-on")
    assert code == EXIT_FAILED and "[invalid-request]" in err and "offered:" in err
