"""Runs the stand-in as a real subprocess (for tests, the local CLI (emulator/local_cli.py) and benchmarks) and drives its admin API."""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]  # the folder that holds the emulator package
READY_TIMEOUT_SECONDS = 30


@dataclass
class StandIn:
    """What the ready line says, plus the process and an admin client."""

    process: subprocess.Popen[str]
    info: dict[str, Any]

    @property
    def graph_url(self) -> str:
        return str(self.info["graph_url"])

    @property
    def vault_url(self) -> str:
        return str(self.info["vault_url"])

    @property
    def authority(self) -> str:
        return str(self.info["authority"])

    @property
    def event_grid_endpoint(self) -> str:
        """The Event Grid topic's publish endpoint (emulator/event_grid.py); not in app_settings(): a test that
        wants events sets EVENT_GRID_TOPIC_ENDPOINT itself."""
        return f"{self.authority}/api/events"

    @property
    def ca_bundle(self) -> str:
        return str(self.info["ca_bundle"])

    @property
    def home_tenant_id(self) -> str:
        return str(self.info["home_tenant_id"])

    @property
    def customer_tenant_ids(self) -> list[str]:
        return list(self.info["customer_tenant_ids"])

    def identity_env(self) -> dict[str, str]:
        """The App Service managed identity variables azure-identity reads."""
        return {"IDENTITY_ENDPOINT": self.info["identity_endpoint"], "IDENTITY_HEADER": self.info["identity_header"]}

    def app_settings(self) -> dict[str, str]:
        """The function app's settings (see shared/settings.py) pointed at this stand-in, plus the identity."""
        return {
            **self.identity_env(),
            "KEY_VAULT_URL": self.vault_url,
            "HOME_TENANT_ID": self.home_tenant_id,
            "MANAGED_IDENTITY_CLIENT_ID": str(self.info["managed_identity_client_id"]),
            "GRAPH_BASE_URL": self.graph_url,
            "RESOURCE_MANAGER_URL": self.authority,  # one host serves every service (emulator/app.py)
            "LOG_ANALYTICS_URL": self.authority,
            "AUTHORITY_HOST": self.authority,
            "TLS_CA_BUNDLE": self.ca_bundle,
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
            "AZURE_CLOUD": str(self.info.get("cloud", "AzurePublicCloud")),  # the cloud it poses as (--cloud)
        }

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        context = ssl.create_default_context(cafile=self.ca_bundle)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.info['admin_url']}{path}",
            data=data,
            method=method,
            headers={"x-emulator-admin-key": self.info["admin_key"], "content-type": "application/json"},
        )
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def set_faults(self, rules: list[dict[str, Any]] | None = None, seed: int = 0, **lag_ms: float) -> Any:
        body: dict[str, Any] = {"rules": rules or [], "seed": seed}
        if lag_ms:
            body["replication_lag_ms"] = lag_ms
        return self.admin("PUT", "/faults", body)

    def clear_faults(self) -> Any:
        return self.admin("DELETE", "/faults")

    def advance_clock(self, seconds: float) -> Any:
        return self.admin("POST", "/clock", {"advance_seconds": seconds})

    def state(self) -> Any:
        return self.admin("GET", "/state")

    def stop(self) -> None:
        if self.process.stdout is not None:
            self.process.stdout.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_stand_in(*extra_args: str, admin: bool = True) -> StandIn:
    args = [sys.executable, "-m", "emulator", "--port", "0", "--identity-port", "0", *extra_args]
    if admin:
        args.append("--admin")
    process = subprocess.Popen(
        args, cwd=REPO, stdout=subprocess.PIPE, stderr=None, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1")
    )
    assert process.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    line = process.stdout.readline()
    if not line or time.monotonic() > deadline:
        process.kill()
        raise RuntimeError(f"the stand-in did not become ready (exit code {process.poll()})")
    return StandIn(process=process, info=json.loads(line))
