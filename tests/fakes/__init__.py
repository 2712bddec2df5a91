"""In-memory stand-ins for the use cases' ports, with failure switches, split by port.

- switches.py: `FaultSwitches`, the call counting and fail-before / fail-after switches every fake has;
- ids.py: the fixed tenants, resource APIs and role ids of the fakes' world;
- clock.py: `FakeClock`, virtual time;
- directory.py: `FakeDirectory` (Entra ID through Graph), with replication lag and throttling switches;
- vault.py: `FakeVault` (Key Vault secrets and certificates);
- checker.py: `FakeChecker` (a token request proving a secret or a certificate);
- certificates.py: `self_signed`, real X.509 certificates (and their PKCS#12) from a session-wide key pool;
- locks.py: `CountingLocks`;
- workspaces.py: `FakeWorkspaces` (Log Analytics workspaces, Azure role assignments, the query API);
- harness.py: `make_onboarding`, `make_rotation` and the seeders.

This module re-exports the public names: tests import `from tests.fakes import ...`. tests/contract/ runs
one suite against these fakes and against the real adapters on the stand-in, so the two cannot drift apart.
"""

from tests.fakes.certificates import IssuedCertificate, self_signed
from tests.fakes.checker import FakeChecker, HoldableChecker
from tests.fakes.clock import FakeClock
from tests.fakes.directory import (
    SERVICE_OBJECT_ID,
    FakeApp,
    FakeDirectory,
    FakeKey,
    FakePassword,
    FakeTenant,
    YieldingDirectory,
)
from tests.fakes.harness import (
    Harness,
    RotationHarness,
    make_onboarding,
    make_rotation,
    make_settings,
    seed_client_secret,
)
from tests.fakes.ids import (
    BASE_ENV,
    DEFENDER_APP_ID,
    EXTRA_ROLES,
    GRAPH_APP_ID,
    HOME_TENANT,
    LOG_ANALYTICS_APP_ID,
    RESOURCE_NAMES,
    START,
    TENANT,
    VAULT_URL,
    resource_object_id,
    role_id,
)
from tests.fakes.locks import CountingLocks
from tests.fakes.switches import Call, FaultSwitches, When
from tests.fakes.vault import CertificateVersion, FakeVault, VaultVersion, YieldingVault
from tests.fakes.workspaces import FakeWorkspaces

__all__ = [
    "BASE_ENV",
    "DEFENDER_APP_ID",
    "EXTRA_ROLES",
    "GRAPH_APP_ID",
    "HOME_TENANT",
    "LOG_ANALYTICS_APP_ID",
    "RESOURCE_NAMES",
    "SERVICE_OBJECT_ID",
    "START",
    "TENANT",
    "VAULT_URL",
    "Call",
    "CertificateVersion",
    "CountingLocks",
    "FakeApp",
    "FakeChecker",
    "FakeClock",
    "FakeDirectory",
    "FakeKey",
    "FakePassword",
    "FakeTenant",
    "FakeVault",
    "FakeWorkspaces",
    "FaultSwitches",
    "Harness",
    "HoldableChecker",
    "IssuedCertificate",
    "RotationHarness",
    "VaultVersion",
    "When",
    "YieldingDirectory",
    "YieldingVault",
    "make_onboarding",
    "make_rotation",
    "make_settings",
    "resource_object_id",
    "role_id",
    "seed_client_secret",
    "self_signed",
]
