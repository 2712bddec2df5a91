"""Lock contention as Azure Storage answers it: a second caller waits, then is told registration-busy.

Azurite is run behind `StorageAnswers`, which gives Storage's answer where Azurite's differs: an
upload (overwrite=False) over a blob another caller leases is 412 LeaseIdMissing in Storage, 409
BlobAlreadyExists in Azurite (Azure/Azurite#2637). Callers are separate clients, as separate
Functions instances are, and in the last tests separate OS processes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob.aio import BlobClient, BlobLeaseClient

from shared.adapters.locks import CONTAINER, BlobLeaseLocks
from shared.domain.errors import RegistrationBusy
from tests.azurite import REPO, Azurite, StorageAnswers

if TYPE_CHECKING:
    from emulator.launcher import StandIn

SHORT_WAIT = 0.3  # seconds a caller waits before registration-busy; long enough to retry a few times


@pytest.fixture(scope="module")
def storage(azurite: Azurite) -> Iterator[StorageAnswers]:
    proxy = StorageAnswers.start(azurite)
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def key() -> str:
    return f"{uuid.uuid4()}/sentinel"


@pytest.fixture
async def callers(storage: StorageAnswers) -> AsyncIterator[tuple[BlobLeaseLocks, BlobLeaseLocks]]:
    """Two callers with clients of their own, as two Functions instances have."""
    first = BlobLeaseLocks(connection_string=storage.connection_string)
    second = BlobLeaseLocks(connection_string=storage.connection_string)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_azurite_still_differs_from_storage_on_an_upload_over_a_leased_blob(
    azurite: Azurite, storage: StorageAnswers, key: str
) -> None:
    """Pins the one correction StorageAnswers makes. When this fails, the pinned Azurite answers 412
    itself (Azure/Azurite#2637 fixed): the correction has become a no-op and can go."""
    answers: dict[str, tuple[int | None, str]] = {}
    for name, endpoint in (("azurite", azurite.connection_string), ("storage", storage.connection_string)):
        await _ensure_container(endpoint)
        async with BlobClient.from_connection_string(endpoint, CONTAINER, f"{key}-{name}.lock") as blob:
            await blob.upload_blob(b"", overwrite=False)
            lease = BlobLeaseClient(blob)
            await lease.acquire(lease_duration=15)
            try:
                with pytest.raises(HttpResponseError) as refused:
                    await blob.upload_blob(b"", overwrite=False)
                code = getattr(refused.value, "error_code", None)
                answers[name] = (refused.value.status_code, str(getattr(code, "value", code)))
                assert getattr(refused.value.response, "headers", {}).get("x-ms-request-id")
            finally:
                await lease.release()
    assert answers == {"azurite": (409, "BlobAlreadyExists"), "storage": (412, "LeaseIdMissing")}


async def test_a_second_caller_on_a_held_registration_waits_then_is_busy(
    storage: StorageAnswers, callers: tuple[BlobLeaseLocks, BlobLeaseLocks], key: str
) -> None:
    first, second = callers
    before = storage.corrected
    async with first.hold(key, wait_seconds=0):
        # The lock blob exists and is leased: the second caller must not upload over it (Storage
        # would answer 412 LeaseIdMissing, a 500 until now) but wait on the lease.
        with pytest.raises(RegistrationBusy):
            async with second.hold(key, wait_seconds=SHORT_WAIT):
                pass
    async with second.hold(key, wait_seconds=0):
        pass  # released: the next caller gets it at once
    assert storage.corrected == before, "a caller uploaded over a leased lock blob"


async def test_a_lock_blob_made_and_leased_by_another_caller_in_between_is_waited_on(
    azurite: Azurite, storage: StorageAnswers, callers: tuple[BlobLeaseLocks, BlobLeaseLocks], key: str
) -> None:
    """The race on a registration's first lock: this caller finds no blob; before its upload
    arrives, another caller creates the blob and leases it. Storage answers the upload 412
    LeaseIdMissing; the caller must wait on the other's lease as on any held one."""
    other_lease: list[str] = []

    async def another_caller_goes_first(path: str) -> None:
        storage.before_put_blob = None
        async with BlobClient.from_connection_string(azurite.connection_string, CONTAINER, f"{key}.lock") as blob:
            await blob.upload_blob(b"", overwrite=False)
            lease = await blob.acquire_lease(lease_duration=15)
            other_lease.append(lease.id)

    _, caller = callers
    await _ensure_container(storage.connection_string)
    before = storage.corrected
    storage.before_put_blob = another_caller_goes_first
    try:
        with pytest.raises(RegistrationBusy):
            async with caller.hold(key, wait_seconds=SHORT_WAIT):
                pass
    finally:
        storage.before_put_blob = None
    assert other_lease, "the other caller never ran: the caller did not try to create the lock blob"
    assert storage.corrected == before + 1, "the caller never met Storage's 412 LeaseIdMissing"

    async with BlobClient.from_connection_string(azurite.connection_string, CONTAINER, f"{key}.lock") as blob:
        await BlobLeaseClient(blob, lease_id=other_lease[0]).release()
    async with caller.hold(key, wait_seconds=0):
        pass  # and once the other lets go, the caller gets it


async def test_a_put_while_another_instance_holds_the_registration_answers_registration_busy(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, storage: StorageAnswers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The HTTP contract: 409 registration-busy, never a 500, when another instance holds the lease."""
    # Imported here: the contender processes below import this module, and need none of the app.
    from shared import bootstrap
    from shared.settings import load_settings
    from tests.functions.conftest import Api, app_environment, body_of

    app_environment(
        monkeypatch,
        stand_in,
        "t",
        dataclasses.replace(azurite, blob_endpoint=storage.blob_endpoint),
        LOCK_WAIT_SECONDS=str(SHORT_WAIT),
    )
    services = bootstrap.build(load_settings())
    bootstrap.override(services)
    other_instance = BlobLeaseLocks(connection_string=storage.connection_string)
    try:
        api = Api(stand_in, services)
        tenant = stand_in.home_tenant_id
        async with other_instance.hold(f"{tenant}/sentinel", wait_seconds=0):
            response = await api.put(tenant, "sentinel")
        assert response.status_code == 409, response.get_body()
        assert body_of(response)["type"].endswith("/registration-busy")
        assert api.apps() == []
    finally:
        await other_instance.close()
        bootstrap.override(None)
        await services.close()


async def _ensure_container(connection_string: str) -> None:
    locks = BlobLeaseLocks(connection_string=connection_string)
    try:
        async with locks.hold(f"{uuid.uuid4()}/container", wait_seconds=0):
            pass
    finally:
        await locks.close()


# Two OS processes. Each appends "<monotonic ns> <name> <event>" lines to one log. Events: try
# (about to take the lock), enter and exit (written inside it), busy (RegistrationBusy). A short
# append to a file opened with O_APPEND lands whole, after every append made before it, so the
# log's order is causal: had both held the lock at once, one's enter would precede the other's
# exit. The assertions use that order only; the timestamps are there to read when one fails.


def contend() -> None:
    """Entry point of one contender process: argv = connection string, key, wait, name, peer, log, until."""
    connection_string, key, wait, me, peer, log, until = sys.argv[1:8]
    asyncio.run(_contend(connection_string, key, float(wait), me, peer, Path(log), until))


async def _contend(connection_string: str, key: str, wait: float, me: str, peer: str, log: Path, until: str) -> None:
    locks = BlobLeaseLocks(connection_string=connection_string)
    try:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)  # both start together
        _note(log, me, "try")
        try:
            async with locks.hold(key, wait):
                _note(log, me, "enter")
                # Stay inside until the peer has reached `until` (or finished, so nothing hangs).
                for _ in range(750):  # 15 s at most
                    if _seen(log, peer, {until, "busy", "exit"}):
                        break
                    await asyncio.sleep(0.02)  # the peer is another process: its log is all there is to watch
                _note(log, me, "exit")
        except RegistrationBusy:
            _note(log, me, "busy")
    finally:
        await locks.close()


def _note(log: Path, me: str, event: str) -> None:
    with log.open("a") as file:
        file.write(f"{time.monotonic_ns()} {me} {event}\n")


def _seen(log: Path, who: str, events: set[str]) -> bool:
    for line in log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == who and parts[2] in events:
            return True
    return False


def _two_processes(connection_string: str, key: str, wait: float, until: str, log: Path) -> list[tuple[str, str]]:
    """Runs contenders a and b on `key`; returns the log as (name, event), in order."""
    log.touch()
    code = "from tests.functions.test_lock_contention import contend; contend()"
    processes = {
        name: subprocess.Popen(
            [sys.executable, "-c", code, connection_string, key, str(wait), name, peer, str(log), until],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, peer in (("a", "b"), ("b", "a"))
    }
    try:
        for name, process in processes.items():
            assert process.stdout is not None and process.stderr is not None
            if process.stdout.readline().strip() != "ready":
                process.wait(timeout=30)
                pytest.fail(f"contender {name} did not start:\n{process.stderr.read()}")
        for process in processes.values():
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        for name, process in processes.items():
            _, errors = process.communicate(timeout=30)
            assert process.returncode == 0, f"contender {name} failed:\n{errors}"
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()
    return [(who, event) for _, who, event in (line.split() for line in log.read_text().splitlines())]


def test_two_processes_on_one_registration_take_turns(storage: StorageAnswers, key: str, tmp_path: Path) -> None:
    # A new registration: both find no lock blob, both try to create it, one leases it first.
    events = _two_processes(storage.connection_string, key, 10, "try", tmp_path / "log")

    entered = [who for who, event in events if event == "enter"]
    assert sorted(entered) == ["a", "b"], events  # both finish
    first, second = entered
    inside = [e for e in events if e[1] in {"enter", "exit"}]
    assert inside == [(first, "enter"), (first, "exit"), (second, "enter"), (second, "exit")], events  # never both
    assert events.index((second, "try")) < events.index((first, "exit")), events  # the second waited for the first


def test_with_a_short_wait_the_other_process_is_told_busy(storage: StorageAnswers, key: str, tmp_path: Path) -> None:
    # The holder stays inside until the other has given up.
    events = _two_processes(storage.connection_string, key, SHORT_WAIT, "busy", tmp_path / "log")

    [holder] = [who for who, event in events if event == "enter"]
    other = "b" if holder == "a" else "a"
    assert [e for e in events if e[0] == other] == [(other, "try"), (other, "busy")], events
    assert events.index((holder, "enter")) < events.index((other, "busy")) < events.index((holder, "exit")), events
