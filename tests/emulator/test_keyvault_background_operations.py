"""Key Vault's soft delete and recover finish after their call returns, as Microsoft's SDK recordings show.

Every recorded deletion (azure-sdk-for-python, -js, -go, -cpp) polls GET /deletedsecrets/{name}
through 404s for seconds before the deleted secret appears, and every recorded recovery polls
GET /secrets/{name} through 404s; emulator/FIDELITY.md lists them. The SDKs' pollers wait both out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.core.rest import HttpRequest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.emulator.sdk import secret_client

LAG_MS = 600


@pytest.fixture
def vault(stand_in: StandIn) -> Iterator[SecretClient]:
    """A client on a vault whose deletions and recoveries each take LAG_MS to complete."""
    stand_in.set_faults(secretDeletion=LAG_MS, secretRecovery=LAG_MS)
    try:
        yield secret_client(stand_in, ManagedIdentityCredential())
    finally:
        stand_in.clear_faults()


def eventually(check: Callable[[], object], attempts: int = 200) -> bool:
    """True once `check` stops raising ResourceNotFoundError (bounded: 200 x 25 ms)."""
    for _ in range(attempts):
        try:
            check()
            return True
        except ResourceNotFoundError:
            time.sleep(0.025)
    return False


def test_a_deleted_secret_is_not_found_until_its_deletion_completes(vault: SecretClient) -> None:
    name = f"bg-delete-{uuid.uuid4().hex[:10]}"
    vault.set_secret(name, "v")
    answer = vault.send_request(HttpRequest("DELETE", f"/secrets/{name}"))  # the bare call, no poller
    assert answer.status_code == 200 and answer.json()["recoveryId"].endswith(f"/deletedsecrets/{name}")

    with pytest.raises(ResourceNotFoundError):
        vault.get_deleted_secret(name)
    assert name not in {s.name for s in vault.list_deleted_secrets()}
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret(name)
    assert eventually(lambda: vault.get_deleted_secret(name))


def test_a_recovered_secret_is_not_found_until_its_recovery_completes(vault: SecretClient) -> None:
    name = f"bg-recover-{uuid.uuid4().hex[:10]}"
    vault.set_secret(name, "v")
    vault.begin_delete_secret(name).wait()  # the SDK's poller waits the deletion out...
    assert vault.get_deleted_secret(name).name == name  # ...so the deleted secret is there at once

    answer = vault.send_request(HttpRequest("POST", f"/deletedsecrets/{name}/recover"))
    assert answer.status_code == 200
    with pytest.raises(ResourceNotFoundError):
        vault.get_secret(name)
    assert eventually(lambda: vault.get_secret(name))


def test_the_sdk_pollers_wait_out_both(vault: SecretClient) -> None:
    name = f"bg-pollers-{uuid.uuid4().hex[:10]}"
    vault.set_secret(name, "v")
    vault.begin_delete_secret(name).wait()
    vault.begin_recover_deleted_secret(name).wait()
    assert vault.get_secret(name).value == "v"
