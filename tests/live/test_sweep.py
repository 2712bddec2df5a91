"""The sweep a run starts with: what an interrupted earlier run left is offboarded, a concurrent run's is not.

An interruption is simulated the way it happens: a run onboards, or is stopped part-way (the vault
refuses a write, leaving what came before it), and never gets to its cleanup. Against the stand-in
only: elsewhere it would make registrations in a real tenant just to remove them, and the sweep a real
run starts with already exercises the listing it relies on.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from subprocess import PIPE, STDOUT

import pytest

from tests.live.target import Answer, Leftover, RunId, Target, World, make_target

REPO = Path(__file__).resolve().parents[2]
AN_HOUR = timedelta(minutes=60)
# 403 as Key Vault answers a caller without the right role: not retried, so the operation stops there.
VAULT_REFUSES = {"kind": "status", "service": "vault", "status": 403, "count": 100}


@pytest.fixture(autouse=True)
def stand_in_only(world: World) -> None:
    if world.stand_in is None:
        pytest.skip("simulating an interrupted run creates registrations only to remove them: stand-in only")


async def interrupted_run(target: Target, world: World, started: datetime, where: str) -> RunId:
    """A run of the same kind that onboards, is stopped at `where`, and never cleans up."""
    assert world.stand_in is not None
    earlier = make_target(target.kind, world, RunId.new(started))
    tenant, integration = world.tenant, world.integration
    try:
        if where == "mid-onboarding":  # app, service principal and grants made; the secret never stored
            world.stand_in.set_faults([dict(VAULT_REFUSES, method="PUT")])
            try:
                stopped = await earlier.put(tenant, integration)
            finally:
                world.stand_in.clear_faults()
            assert stopped.status >= 400, str(stopped)
        else:
            assert (await earlier.onboard(tenant, integration))[-1].status in (200, 201)
        if where == "mid-offboarding":  # app deleted and purged; the three secrets still in the vault
            world.stand_in.set_faults([dict(VAULT_REFUSES, method="DELETE")])
            try:
                stopped = await earlier.delete(tenant, integration)
            finally:
                world.stand_in.clear_faults()
            assert stopped.status >= 400, str(stopped)
    finally:
        await earlier.close()  # and no cleanup(): that is the interruption
    return earlier.run


def of(run: RunId, found: list[Leftover]) -> list[Leftover]:
    return [leftover for leftover in found if leftover.run == run]


@pytest.mark.parametrize("where", ["after onboarding", "mid-onboarding", "mid-offboarding"])
async def test_what_an_interrupted_run_left_is_offboarded_by_the_next_runs_sweep(
    target: Target, world: World, where: str
) -> None:
    if where == "mid-offboarding" and target.kind == "http":
        pytest.skip(
            "over HTTP a registration whose app is gone shows no run id, so the sweep leaves it for a DELETE "
            "by hand (README); in process the Key Vault names carry the run id"
        )
    earlier = await interrupted_run(target, world, datetime.now(UTC) - 2 * AN_HOUR, where)
    found, _ = await target.leftovers()
    assert of(earlier, found), f"the sweep cannot see what run {earlier} left"

    report = await target.sweep(min_age=AN_HOUR)

    assert not report.failed and not report.problems, str(report)
    assert {(x.run, x.tenant, x.integration) for x in report.offboarded} >= {(earlier, world.tenant, world.integration)}
    assert of(earlier, (await target.leftovers())[0]) == []  # nowhere: Entra, its deleted items, Key Vault
    gone = await make_target_get(target, world, earlier)
    assert gone.status == 404, str(gone)


async def make_target_get(target: Target, world: World, run: RunId) -> Answer:
    """GET the registration as the run that made it would (in process, its NAME_PREFIX is its run id)."""
    earlier = make_target(target.kind, world, run)
    try:
        return await earlier.get(world.tenant, world.integration)
    finally:
        await earlier.close()


async def test_the_sweep_leaves_a_younger_run_alone_it_may_still_be_going(target: Target, world: World) -> None:
    concurrent = make_target(target.kind, world, RunId.new())  # started now, elsewhere
    try:
        await concurrent.onboard(world.tenant, world.integration)

        report = await target.sweep(min_age=AN_HOUR)

        assert of(concurrent.run, report.too_young) and not of(concurrent.run, report.offboarded), str(report)
        assert (await concurrent.get(world.tenant, world.integration)).status == 200
    finally:
        assert not await concurrent.cleanup()
        await concurrent.close()


async def test_the_manual_sweep_command_offboards_what_an_interrupted_run_left(target: Target, world: World) -> None:
    earlier = await interrupted_run(target, world, datetime.now(UTC) - 2 * AN_HOUR, "after onboarding")
    env = dict(
        os.environ,
        LIVE_TARGET=target.kind,
        LIVE_TENANT_ID=world.tenant,
        LIVE_CUSTOMER_TENANT_IDS=",".join(world.customers),
        LIVE_INTEGRATION=world.integration,
    )
    if target.kind == "http":
        env |= {"LIVE_FUNCTION_URL": str(world.function_url), "LIVE_FUNCTION_KEY": str(world.function_key)}
    else:
        env |= world.app_settings  # the function app's settings, as a maintainer exports them

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.live.sweep", cwd=REPO, env=env, stdout=PIPE, stderr=STDOUT
    )
    output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()

    assert process.returncode == 0, output
    assert f"offboarded {earlier} {world.tenant}/{world.integration}" in output, output
    assert of(earlier, (await target.leftovers())[0]) == []


async def test_a_run_stopped_with_sigterm_still_offboards_what_it_made(target: Target, world: World) -> None:
    # A cancelled CI job gets SIGTERM: the suite turns it into KeyboardInterrupt, on which pytest still
    # runs the finalizers. The run is a real one, in a process of its own, pointed at this stand-in as a
    # maintainer points it at a tenant (LIVE_TARGET=in-process and the app's settings).
    if target.kind != "in-process":
        pytest.skip("the signal handling is the same for both targets: shown once, in process")
    assert world.stand_in is not None
    env = dict(
        os.environ,
        **world.app_settings,
        LIVE_TARGET="in-process",
        LIVE_TENANT_ID=world.tenant,
        LIVE_INTEGRATION=world.integration,
    )
    known = {leftover.run for leftover in (await target.leftovers())[0]}
    # The run stops for a while right after it has registered its app (its client secret takes 8 s to
    # come), so the signal lands mid-onboarding however long this side's look at the tenants takes: with
    # a vault and a directory full of other tests' objects, one look can outlast a whole unhindered run.
    world.stand_in.set_faults(
        [{"kind": "latency", "service": "graph", "method": "POST", "path": "addPassword", "latency_ms": 8000}]
    )
    try:
        process = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "pytest", "tests/live/test_one_tenant.py", "-k", "status", "-p", "no:cacheprovider"],
            cwd=REPO, env=env, stdout=PIPE, stderr=STDOUT,
        )  # fmt: skip
        try:
            other: set[RunId] = set()
            deadline = time.monotonic() + 60
            while not other and process.returncode is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                other = {leftover.run for leftover in (await target.leftovers())[0]} - known
            if not other:
                if process.returncode is None:
                    process.kill()
                told = (await asyncio.wait_for(process.communicate(), 60))[0].decode()
                pytest.fail(f"the run made nothing before it ended (exit {process.returncode}):\n{told[-4000:]}")
            process.send_signal(signal.SIGTERM)
            output = (await asyncio.wait_for(process.communicate(), 120))[0].decode()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    finally:
        world.stand_in.clear_faults()

    assert process.returncode == pytest.ExitCode.INTERRUPTED, output
    [run] = other
    assert of(run, (await target.leftovers())[0]) == [], output
