"""A sweep invocation SIGKILLed in the middle of a full pass, and the next completing exactly the rest.

A real process (tests/reliability/sweep_runner.py) sweeps registrations bulk-seeded into the stand-in as onboarding
leaves them (so the due index holds none of them: only the full pass over Key Vault's listing finds them), with its
checkpoint in Azurite saved every two pages, and is killed with SIGKILL once its checkpoint shows a few pages done
(the pages read since the last save are the next invocation's to read again). Then invocations in
this process complete the pass, and the rotation worker takes every work item both queued. The pass's own count must
equal the registrations exactly (no page counted twice, none skipped), and every due registration must be rotated
exactly once: two credentials on its app, where every other app keeps one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient

from bench.rotation_sweep import GRAPH_APP_ID, ROLE, synthetic_catalog
from emulator.launcher import StandIn
from shared import bootstrap
from shared.adapters.sweep_storage import CONTAINER
from tests.azurite import Azurite
from tests.functions.queue_host import deliver_work

REPO = Path(__file__).resolve().parents[2]
REGISTRATIONS = 100  # 300 secrets: 12 listing pages of 25
KILL_AFTER_PAGES = 4


def checkpoint_pages(azurite: Azurite, prefix: str) -> int:
    blob = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        CONTAINER, f"{prefix}/checkpoint.json"
    )
    try:
        saved = json.loads(blob.download_blob().readall())
    except ResourceNotFoundError:
        return 0
    return int((saved.get("fullPass") or {}).get("pages") or 0)


async def test_a_sweep_killed_mid_pass_is_completed_exactly_by_the_next_invocation(
    stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = f"k{uuid.uuid4().hex[:8]}"
    seeded = stand_in.admin(
        "POST", "/registrations",
        {
            "namePrefix": prefix, "integrations": [f"bulk-{i:05d}" for i in range(REGISTRATIONS)],
            "permissions": [{"resourceAppId": GRAPH_APP_ID, "roles": [ROLE]}], "due": 0.1, "seed": 7,
        },
    )  # fmt: skip
    due = set(seeded["due"])
    assert len(due) == REGISTRATIONS // 10
    settings = {
        **stand_in.app_settings(), "NAME_PREFIX": prefix, "AzureWebJobsStorage": azurite.connection_string,
        "ROTATION_RATE_PER_SECOND": "0", "SWEEP_INVOCATION_SECONDS": "600", "SWEEP_CHECKPOINT_PAGES": "2",
    }  # fmt: skip
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # Every listing page takes 40 ms, so the runner is still mid-pass when it is killed.
    stand_in.set_faults([{"kind": "latency", "service": "vault", "latency_ms": 40}])
    try:
        runner = subprocess.Popen(  # noqa: ASYNC220 - the process to kill, started once
            [sys.executable, "-m", "tests.reliability.sweep_runner", str(REGISTRATIONS)],
            cwd=REPO, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while checkpoint_pages(azurite, prefix) < KILL_AFTER_PAGES:
            assert runner.poll() is None, f"the runner ended before it was killed: {runner.communicate()[0]}"
            assert time.monotonic() < deadline, "the runner never got going"
            await asyncio.sleep(0.01)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
        assert runner.returncode == -signal.SIGKILL
        killed_at = checkpoint_pages(azurite, prefix)
        assert KILL_AFTER_PAGES <= killed_at < 12, f"killed mid-pass, at page {killed_at}"
    finally:
        stand_in.clear_faults()

    services = bootstrap.build(catalog=synthetic_catalog(REGISTRATIONS))
    assert services.sweep_passes is not None
    bootstrap.override(services)
    try:
        with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
            while not (await services.sweep_passes.run()).completed:
                pass
        [completed] = [
            r.__dict__["audit"] for r in caplog.records
            if r.name == "tenant_onboarding.audit" and r.__dict__["audit"]["operation"] == "sweep.completed"
        ]  # fmt: skip
        assert completed["scanned"] == str(REGISTRATIONS), "every record counted once across the kill"
        assert int(completed["invocations"]) == 2 and int(completed["enqueued"]) == len(due)
        await deliver_work()
    finally:
        await services.close()
        bootstrap.override(None)
    apps = stand_in.state()["tenants"][stand_in.home_tenant_id]["applications"]
    credentials = {
        str(a["uniqueName"])[len(prefix) + 1 :]: len(a["passwordKeyIds"])
        for a in apps
        if str(a.get("uniqueName") or "").startswith(prefix + "-")
    }
    assert len(credentials) == REGISTRATIONS
    assert {i for i, n in credentials.items() if n == 2} == due, "each due registration rotated, and once"
    assert all(n == 1 for i, n in credentials.items() if i not in due)
