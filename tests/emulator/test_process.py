"""The stand-in as a process: its ready line, admin switch, and persistence across restarts."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from azure.identity import ManagedIdentityCredential

from emulator.launcher import StandIn, start_stand_in
from tests.emulator.sdk import secret_client

READY_FIELDS = {
    "graph_url", "vault_url", "authority", "identity_endpoint", "identity_header", "ca_bundle",
    "home_tenant_id", "managed_identity_client_id",
}  # fmt: skip


def test_ready_line_names_everything_a_client_needs(stand_in: StandIn) -> None:
    assert set(stand_in.info) >= READY_FIELDS
    assert stand_in.graph_url.endswith("/v1.0") and stand_in.graph_url.startswith("https://")
    assert stand_in.info["identity_endpoint"].startswith("http://127.0.0.1:")
    assert Path(stand_in.ca_bundle).read_text().startswith("-----BEGIN CERTIFICATE-----")


def test_admin_api_is_off_unless_asked_for() -> None:
    instance = start_stand_in(admin=False)
    try:
        assert instance.info["admin_key"] is None
        context = ssl.create_default_context(cafile=instance.ca_bundle)
        with pytest.raises(urllib.error.HTTPError) as raised:
            urllib.request.urlopen(f"{instance.authority}/_emulator/state", context=context, timeout=10)
        assert raised.value.code == 404
        with urllib.request.urlopen(f"{instance.authority}/_emulator/health", context=context, timeout=10) as ok:
            assert json.loads(ok.read()) == {"status": "ok"}
    finally:
        instance.stop()


def test_admin_api_needs_its_key(stand_in: StandIn) -> None:
    context = ssl.create_default_context(cafile=stand_in.ca_bundle)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(f"{stand_in.authority}/_emulator/state", context=context, timeout=10)
    assert raised.value.code == 401


def test_state_ca_and_keys_survive_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "standin"
    first = start_stand_in("--data-dir", str(data_dir))
    try:
        for name, value in first.identity_env().items():
            monkeypatch.setenv(name, value)
        secret_client(first, ManagedIdentityCredential()).set_secret("survivor", "still-here")
        first.advance_clock(86400)
    finally:
        first.stop()
    assert (data_dir / "state.json").stat().st_mode & 0o777 == 0o600

    second = start_stand_in("--data-dir", str(data_dir))
    try:
        assert second.ca_bundle == first.ca_bundle
        for name, value in second.identity_env().items():
            monkeypatch.setenv(name, value)
        assert secret_client(second, ManagedIdentityCredential()).get_secret("survivor").value == "still-here"
        assert second.admin("GET", "/clock")["offset_seconds"] == pytest.approx(86400)
    finally:
        second.stop()


def test_a_custom_seed_file_is_honoured(tmp_path: Path) -> None:
    seed = json.loads((Path(__file__).resolve().parents[2] / "emulator" / "seed.json").read_text())
    seed["customer_tenants"] = []
    seed["home_tenant"]["id"] = "0c9f0c1e-0000-4000-8000-000000000001"
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed))
    instance = start_stand_in("--seed", str(seed_file))
    try:
        assert instance.home_tenant_id == "0c9f0c1e-0000-4000-8000-000000000001"
        assert instance.customer_tenant_ids == []
    finally:
        instance.stop()
