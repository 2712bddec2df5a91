"""Where the live suite runs, chosen by LIVE_TARGET, and the cleanup around every run.

- `stand-in` (the default, what CI runs): the local stand-in, in vendor-hosted mode with the home tenant
  allowed, two consented customer tenants, blob-lease locks in Azurite; the flows run twice, in
  process and over HTTP (through tests/live/host.py, a local Functions-host front).
- `in-process`: the function app's settings exported in the environment, against a real tenant.
- `http`: a deployed function app (LIVE_FUNCTION_URL, LIVE_FUNCTION_KEY).

Cleanup happens three ways. Each test module offboards what it onboarded when it ends; the target's
finalizer offboards anything else this run onboarded, also after Ctrl-C (pytest runs finalizers on
KeyboardInterrupt) and SIGTERM (turned into KeyboardInterrupt while the suite runs); and every run
starts with a sweep that offboards what earlier runs left when killed outright (SIGKILL, a lost VM).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import secrets
import signal
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential

from emulator.launcher import StandIn
from shared.usecases.workspace_access import CONDITION, RBAC_ADMINISTRATOR
from tests.azurite import Azurite
from tests.functions.conftest import NORTHWIND, consent, provisioner_app
from tests.live.target import (
    ENTRA_SECRET_MARK,
    Consumer,
    LiveSetupError,
    RunId,
    SweepReport,
    Target,
    World,
    environ,
    live_catalog,
    make_target,
    world_from_environment,
)

REPO = Path(__file__).resolve().parents[2]
LIVE_TARGET = os.environ.get("LIVE_TARGET", "stand-in").strip() or "stand-in"
KINDS = ["in-process", "http"] if LIVE_TARGET == "stand-in" else [LIVE_TARGET]


def sweep_min_age() -> timedelta:
    """Leftovers younger than this may belong to a run still going (another maintainer's): left alone."""
    return timedelta(minutes=float(os.environ.get("LIVE_SWEEP_MIN_AGE_MINUTES", "") or 60))


# --- the world ---


async def stand_in_world(stand_in: StandIn, azurite: Azurite) -> World:
    """The stand-in as a vendor-hosted deployment: a provisioner app trusting the managed identity,
    two customer tenants that consented to it, and the home tenant allowed for the one-tenant flows."""
    with environ(stand_in.identity_env()):
        provisioner = await provisioner_app(stand_in, str(stand_in.info["managed_identity_object_id"]))
    second = stand_in.admin("POST", "/tenants", {"displayName": "Live suite customer", "resourceApps": ["graph"]})
    customers = [NORTHWIND, str(second["id"])]
    for tenant in customers:
        consent(stand_in, tenant, provisioner)
    app_settings = {
        **stand_in.app_settings(),
        "AzureWebJobsStorage": azurite.connection_string,
        "PROVISIONER_CLIENT_ID": provisioner,
        "ALLOW_HOME_TENANT": "true",
        # A new secret that does not work within a second makes the PUT answer 202: lagging for a few
        # seconds (test_replication) takes the suite's Retry-After path in seconds, not a minute.
        "VERIFY_TIMEOUT_SECONDS": "1",
    }
    consumer = Consumer(
        lambda: ManagedIdentityCredential(), stand_in.authority, stand_in.ca_bundle, False,
        environment=stand_in.identity_env(),
    )  # fmt: skip
    # A workspace whose admin granted this service what docs/sentinel.md asks (the managed identity: the home tenant).
    workspace = stand_in.admin("POST", "/workspaces", {
        "tenantId": stand_in.home_tenant_id, "subscriptionId": "6f0b9c1e-2d3a-4b5c-8d7e-9f0a1b2c3d4e",
        "resourceGroup": "rg-live", "name": "law-live",
    })  # fmt: skip
    roles = ", ".join(r.role_definition_id for r in live_catalog().require("sentinel").workspace_roles)
    stand_in.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": RBAC_ADMINISTRATOR, "principalType": "ServicePrincipal",
        "principalId": str(stand_in.info["managed_identity_object_id"]), "condition": CONDITION.format(roles=roles),
    })  # fmt: skip
    return World(
        "the stand-in",
        tenant=stand_in.home_tenant_id,
        customers=customers,
        integration="m365-defender",
        app_settings=app_settings,
        consumer=consumer,
        converge_seconds=60,
        settle_seconds=0,  # the stand-in refuses a removed credential at once
        stand_in=stand_in,
        sentinel_workspace=str(workspace["id"]),
    )


@pytest.fixture(scope="package")
async def base_world(request: pytest.FixtureRequest) -> World:
    if LIVE_TARGET == "stand-in":
        stand_in = request.getfixturevalue("stand_in")
        azurite = request.getfixturevalue("azurite")
        stand_in.clear_faults()
        return await stand_in_world(stand_in, azurite)
    try:
        return world_from_environment(os.environ)
    except (LiveSetupError, ValueError) as problem:
        pytest.fail(f"live suite: {problem} (README: Live suite)", pytrace=False)


# --- a local Functions-host front, so the HTTP target runs against the stand-in too ---


@contextlib.contextmanager
def local_host(world: World) -> Iterator[World]:
    """tests/live/host.py serving the app over HTTP, with a fixed NAME_PREFIX as a deployment has."""
    key = secrets.token_urlsafe(24)
    env = dict(os.environ, **world.app_settings, NAME_PREFIX=f"d{uuid.uuid4().hex[:10]}", LIVE_HOST_FUNCTION_KEY=key)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.live.host"], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, f"the local host did not start (exit code {process.poll()})"
        yield dataclasses.replace(world, function_url=json.loads(line)["url"], function_key=key)
    finally:
        if process.stdout is not None:
            process.stdout.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (a cancelled CI job, `kill`) raises KeyboardInterrupt, so pytest still runs the finalizers."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield  # someone else handles it; leave theirs in place
        return
    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


# --- the target: one per kind, with the start-of-run sweep and the finalizer ---

SWEEPS: dict[str, SweepReport] = {}
CALLS: dict[str, tuple[int, int]] = {}  # target -> (API requests, Key Vault operations by the suite's own reads)
REQUESTS: dict[tuple[str, str], dict[str, dict[str, int]]] = {}  # (target, module) -> service -> method -> count


def requests_seen(world: World) -> dict[str, dict[str, int]]:
    return dict(world.stand_in.admin("GET", "/requests")["totals"]) if world.stand_in else {}


def count(world: World, kind: str, where: str, before: dict[str, dict[str, int]]) -> None:
    after = requests_seen(world)
    tally = REQUESTS.setdefault((kind, where), {})
    for service, methods in after.items():
        for method, total in methods.items():
            delta = total - before.get(service, {}).get(method, 0)
            if delta:
                tally.setdefault(service, {})[method] = tally.get(service, {}).get(method, 0) + delta


@pytest.fixture(scope="package", params=KINDS)
async def target(request: pytest.FixtureRequest, base_world: World) -> AsyncIterator[Target]:
    kind, world = str(request.param), base_world
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_interrupts())
        if kind == "http" and world.stand_in is not None:
            world = stack.enter_context(local_host(world))
        before = requests_seen(world)
        live = make_target(kind, world, RunId.new())
        try:
            report = await live.sweep(sweep_min_age())
            SWEEPS[f"{kind} run {live.run} against {world.description}"] = report
            if report.failed or report.problems:
                warnings.warn(f"live suite: the start-of-run sweep left work undone:\n{report}", stacklevel=1)
            count(world, kind, "start-of-run sweep", before)
            yield live
        finally:
            before = requests_seen(world)
            failures = await live.cleanup()
            await live.close()
            count(world, kind, "finalizer", before)
            CALLS[kind] = (len(live.answers), world.consumer.operations if world.consumer else 0)
            if world.consumer:
                world.consumer.operations = 0
            assert not failures, (
                "live suite: could not offboard what this run made; the next run's sweep retries, or see "
                "README 'Live suite' for the manual command:\n" + "\n".join(failures)
            )


@pytest.fixture(scope="package")
def world(target: Target) -> World:
    """Where this target runs (over HTTP against the stand-in: with the local host's URL and key)."""
    return target.world


@pytest.fixture(scope="module", autouse=True)
def requests_per_module(request: pytest.FixtureRequest, target: Target, world: World) -> Iterator[None]:
    """The stand-in's request counts for each module, its module-scoped setup and teardown included
    (autouse: set up before, and torn down after, the module's other fixtures): the README's cost figures."""
    before = requests_seen(world)
    yield
    count(world, target.kind, request.path.stem, before)


@pytest.fixture(autouse=True)
def no_secret_in_any_answer(target: Target, world: World) -> Iterator[None]:
    """After every test: no answer it got holds a secret (the Entra mark, or a client secret the consumer read)."""
    first = len(target.answers)
    yield
    read = world.consumer.seen if world.consumer else set()
    for answer in target.answers[first:]:
        assert ENTRA_SECRET_MARK not in answer.text, f"a secret in {answer.method} {answer.path}"
        assert not any(value in answer.text for value in read), f"a stored secret in {answer.method} {answer.path}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not SWEEPS and not REQUESTS:
        return
    write = terminalreporter.write_line
    terminalreporter.section("live suite")
    for run, report in SWEEPS.items():
        write(f"{run}: start-of-run sweep {report}")
    for kind, (api, reads) in CALLS.items():
        write(f"{kind}: {api} API requests; {reads} Key Vault reads by the suite itself (the consumer's checks)")
    if REQUESTS:
        write("requests the stand-in received, by target and module (Graph counts each $batch item):")
        for (kind, where), services in sorted(REQUESTS.items()):
            if not services:
                continue
            figures = ", ".join(
                f"{service} {sum(m.values())} ({' '.join(f'{k} {v}' for k, v in sorted(m.items()))})"
                for service, m in sorted(services.items())
            )
            write(f"  {kind:<10} {where:<20} {figures}")
