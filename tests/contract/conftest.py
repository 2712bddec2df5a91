"""The two implementations every contract test runs against, behind one `Ports` interface.

Owns the `ports` fixture, parametrized over:

- "fake": the in-memory fakes of tests/fakes (`FakeDirectory`, `FakeVault`, `FakeChecker`, `FakeWorkspaces`) on
  the real clock, their switches (replication steps, throttling, policy) set through the fakes' own seeding
  methods;
- "stand-in": the real adapters (`GraphDirectory`, `KeyVault`, `TokenRoleChecker`, `ArmWorkspaces`) through the
  unmodified Microsoft SDKs against the session's stand-in (tests/conftest.py), its switches set through the
  stand-in's admin API (faults, replication lag, app management policy, workspaces and Azure role assignments).

A test calls only the ports' methods and names only the project's values and errors; how each world is
told to lag, throttle or refuse is this module's business. Each test gets a fresh name prefix, so tests
never see each other's apps or secrets on the shared stand-in.
"""

from __future__ import annotations

import abc
import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest

from emulator.launcher import StandIn
from shared.adapters.graph import GraphDirectory
from shared.adapters.identity import Identity
from shared.adapters.keyvault import KeyVault
from shared.adapters.token_check import TokenRoleChecker
from shared.adapters.workspaces import ArmWorkspaces
from shared.domain.catalog import load_catalog
from shared.domain.model import ClientCredential, PasswordPolicy, ResourceApi
from shared.domain.ports import ApplicationSpec, CredentialChecker, Directory, NotReplicatedYet, Vault, Workspaces
from shared.settings import load_settings
from tests.fakes import (
    GRAPH_APP_ID,
    HOME_TENANT,
    SERVICE_OBJECT_ID,
    VAULT_URL,
    FakeChecker,
    FakeDirectory,
    FakeVault,
    FakeWorkspaces,
)

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Role values every Graph service principal offers in both worlds (the fake's come from the catalog,
# the stand-in's from its seed, with the same ids).
ROLE_VALUES = ("User.Read.All", "Group.Read.All")
# Long enough for a handful of requests to meet it, short enough to wait out.
STAND_IN_LAG_SECONDS = 0.6

# The subscription holding each test's workspace: the stand-in's home tenant owns it (tests/emulator/test_arm.py
# makes the same one), the fake's is any id.
HOME_SUBSCRIPTION = str(uuid.uuid5(uuid.NAMESPACE_URL, "stand-in/home-subscription"))
LOG_ANALYTICS_SCOPE = "https://api.loganalytics.io/.default"

Throttleable = Literal["find_application", "add_password", "grant"]
LagKind = Literal["application", "servicePrincipal", "password"]


def in_days(days: float) -> datetime:
    """A secret's end, to the second (Graph keeps no finer time)."""
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


async def graph_api(ports: Ports) -> ResourceApi:
    """Microsoft Graph's service principal in the tenant, with its app roles by value."""
    api = await ports.directory.resource_api(ports.tenant_id, GRAPH_APP_ID)
    assert api is not None
    return api


def delegation_condition(roles: tuple[str, ...]) -> str:
    """ "Constrain roles and principal types" for writes and deletes
    (https://learn.microsoft.com/azure/role-based-access-control/delegate-role-assignments-examples)."""
    listed = "{" + ", ".join(roles) + "}"
    return " AND ".join(
        f"((!(ActionMatches{{'Microsoft.Authorization/roleAssignments/{action}'}})) OR "
        f"(@{source}[Microsoft.Authorization/roleAssignments:RoleDefinitionId] ForAnyOfAnyValues:GuidEquals {listed} "
        f"AND @{source}[Microsoft.Authorization/roleAssignments:PrincipalType] "
        "ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal'}))"
        for action, source in (("write", "Request"), ("delete", "Resource"))
    )


class Ports(abc.ABC):
    """One implementation of the Directory, Vault, CredentialChecker and Workspaces ports, and its switches."""

    name: str
    directory: Directory
    vault: Vault
    checker: CredentialChecker
    workspaces: Workspaces
    service_object_id: str  # this service's principal in the tenant: the one ARM authorizes
    tenant_id: str
    prefix: str
    vault_url: str  # the vault's own base URL: its listing links start with it

    def unique(self, label: str) -> str:
        """A name no other test uses: an app's uniqueName or a secret's name (letters, digits, dashes)."""
        return f"{self.prefix}-{label}-{uuid.uuid4().hex[:8]}"

    def spec(self, display_name: str, roles: tuple[str, ...] = ()) -> ApplicationSpec:
        return ApplicationSpec(
            display_name=display_name,
            tags=("contract", self.prefix),
            notes="created by tests/contract",
            required_roles=((GRAPH_APP_ID, roles),) if roles else (),
        )

    @abc.abstractmethod
    def new_workspace(self, label: str) -> str:
        """A Log Analytics workspace no other test uses, in a subscription of the tenant; its resource id."""

    @abc.abstractmethod
    def give(self, scope: str, role: str, principal_id: str, delegates: tuple[str, ...] | None = None) -> str:
        """The customer's admin assigns `role` (a GUID) to a service principal at `scope`, outside this service;
        with `delegates`, under the documented condition letting its holder assign and delete only those roles,
        only to service principals. The assignment's id."""

    @abc.abstractmethod
    def assign_directory_role(self, client_id: str, template_id: str) -> None:
        """The customer's admin assigns the app's service principal an Entra role (Roles and administrators)."""

    @abc.abstractmethod
    def lag(self, *kinds: LagKind) -> None:
        """From now on, objects of these kinds written are invisible to reads and dependent calls until
        `settle()` (Entra's replication lag)."""

    @abc.abstractmethod
    async def settle(self) -> None:
        """Entra caught up: every object written so far is visible, and new ones are at once."""

    @abc.abstractmethod
    def throttle(self, operation: Throttleable, retry_after: int) -> None:
        """Graph answers every call `operation` makes with 429 and this Retry-After, until the test ends."""

    @abc.abstractmethod
    def set_policy(self, policy: PasswordPolicy) -> None:
        """The tenant's app management policy restricts new secrets and certificates as `policy` says (reset after
        the test)."""


class FakePorts(Ports):
    name = "fake"

    def __init__(self) -> None:
        catalog = load_catalog()
        self.prefix = f"c{uuid.uuid4().hex[:10]}"
        self.tenant_id = HOME_TENANT
        self.fake_directory = FakeDirectory(catalog, lambda: datetime.now(UTC))
        self.fake_directory.add_tenant(self.tenant_id)
        self.fake_vault = FakeVault(VAULT_URL, name_prefix=self.prefix)
        self.vault_url = VAULT_URL
        self.fake_checker = FakeChecker(self.fake_directory, catalog)
        self.directory, self.vault, self.checker = self.fake_directory, self.fake_vault, self.fake_checker
        self.service_object_id = SERVICE_OBJECT_ID
        self.fake_workspaces = FakeWorkspaces(SERVICE_OBJECT_ID, self._sign_in, self._principal_known)
        self.workspaces = self.fake_workspaces

    async def _sign_in(self, tenant_id: str, client_id: str, credential: ClientCredential) -> str | None:
        """The app's principal when `credential` gets it a Log Analytics token holding Data.Read."""
        try:
            roles = await self.fake_checker.granted_roles(tenant_id, client_id, credential, LOG_ANALYTICS_SCOPE)
        except NotReplicatedYet:
            return None
        return (
            self.fake_directory.tenants[tenant_id].service_principals.get(client_id) if "Data.Read" in roles else None
        )

    def _principal_known(self, tenant_id: str, principal_id: str) -> bool:
        return principal_id in self.fake_directory.tenants[tenant_id].service_principals.values()

    def new_workspace(self, label: str) -> str:
        unique = self.unique(label)
        return self.fake_workspaces.add_workspace(self.tenant_id, HOME_SUBSCRIPTION, f"rg-{unique}", unique).resource_id

    def give(self, scope: str, role: str, principal_id: str, delegates: tuple[str, ...] | None = None) -> str:
        allowed = frozenset(delegates) if delegates is not None else None
        return self.fake_workspaces.add_assignment(scope, role, principal_id, allowed)

    def assign_directory_role(self, client_id: str, template_id: str) -> None:
        self.fake_checker.held_directory_roles.setdefault((self.tenant_id, client_id), set()).add(template_id)

    def lag(self, *kinds: LagKind) -> None:
        if {"application", "servicePrincipal"} & set(kinds):
            self.fake_directory.replication_steps = 10**9  # as good as until settle()
        if "password" in kinds:
            self.fake_checker.not_replicated_for(10**9)

    async def settle(self) -> None:
        self.fake_directory.replication_steps = 0
        self.fake_directory.settle()
        self.fake_checker.not_replicated_for(0)

    def throttle(self, operation: Throttleable, retry_after: int) -> None:
        self.fake_directory.throttle(operation, retry_after)

    def set_policy(self, policy: PasswordPolicy) -> None:
        self.fake_directory.set_policy(self.tenant_id, policy)


# Graph requests each throttleable port call sends (the stand-in's fault rules match method and path).
THROTTLED_REQUESTS: dict[Throttleable, dict[str, str]] = {
    "find_application": {"method": "GET", "path": r"/applications\(uniqueName="},
    "add_password": {"method": "POST", "path": r"/addPassword$"},
    "grant": {"method": "POST", "path": r"/appRoleAssignedTo$"},  # each item of the $batch
}
DEFAULT_POLICY: dict[str, Any] = {
    "isEnabled": False,
    "applicationRestrictions": {"passwordCredentials": [], "keyCredentials": []},
}


class StandInPorts(Ports):
    name = "stand-in"

    def __init__(self, stand_in: StandIn) -> None:
        self.stand_in = stand_in
        self.prefix = f"c{uuid.uuid4().hex[:10]}"
        self.tenant_id = stand_in.home_tenant_id
        settings = load_settings(stand_in.app_settings() | {"NAME_PREFIX": self.prefix})
        self.identity = Identity(settings)
        self.graph = GraphDirectory(settings, self.identity)
        self.key_vault = KeyVault(settings, self.identity)
        self.vault_url = settings.key_vault_url
        self.token_check = TokenRoleChecker(settings)
        self.directory, self.vault, self.checker = self.graph, self.key_vault, self.token_check
        self.arm = ArmWorkspaces(settings, self.identity)
        self.workspaces = self.arm
        self.service_object_id = str(stand_in.info["managed_identity_object_id"])
        self._rules: list[dict[str, Any]] = []
        self._lag_ms: dict[str, float] = {}
        self._policy_set = False

    def new_workspace(self, label: str) -> str:
        unique = self.unique(label)
        body = {
            "tenantId": self.tenant_id,
            "subscriptionId": HOME_SUBSCRIPTION,
            "resourceGroup": f"rg-{unique}",
            "name": unique,
        }
        return str(self.stand_in.admin("POST", "/workspaces", body)["id"])

    def give(self, scope: str, role: str, principal_id: str, delegates: tuple[str, ...] | None = None) -> str:
        body = {
            "scope": scope,
            "roleDefinitionId": role,
            "principalId": principal_id,
            "principalType": "ServicePrincipal",
        }
        if delegates is not None:
            body["condition"] = delegation_condition(delegates)
        return str(self.stand_in.admin("POST", "/roleAssignments", body)["id"])

    def assign_directory_role(self, client_id: str, template_id: str) -> None:
        body = {"appId": client_id, "roleTemplateId": template_id}
        self.stand_in.admin("POST", f"/tenants/{self.tenant_id}/directory-roles", body)

    def lag(self, *kinds: LagKind) -> None:
        self._lag_ms = dict.fromkeys(kinds, STAND_IN_LAG_SECONDS * 1000)
        self._apply()

    async def settle(self) -> None:
        lagged = bool(self._lag_ms)
        self._lag_ms = dict.fromkeys(self._lag_ms, 0.0)
        self._apply()  # objects written from now on are visible at once
        self._lag_ms = {}
        if lagged:
            await asyncio.sleep(STAND_IN_LAG_SECONDS)  # those written before become visible

    def throttle(self, operation: Throttleable, retry_after: int) -> None:
        rule = {"kind": "status", "service": "graph", "status": 429, "retry_after": retry_after}
        self._rules.append(rule | THROTTLED_REQUESTS[operation])
        self._apply()

    def set_policy(self, policy: PasswordPolicy) -> None:
        restrictions: list[dict[str, Any]] = []
        if not policy.additions_allowed:
            restrictions.append(
                _restriction("passwordAddition", None, policy.additions_forbidden_for_apps_created_from)
            )
        if policy.max_lifetime_days is not None:
            lifetime = f"P{policy.max_lifetime_days:g}D"
            restrictions.append(
                _restriction("passwordLifetime", lifetime, policy.lifetime_capped_for_apps_created_from)
            )
        key_restrictions: list[dict[str, Any]] = []
        if policy.certificate_max_lifetime_days is not None:
            lifetime = f"P{policy.certificate_max_lifetime_days:g}D"
            key_restrictions.append(
                _restriction(
                    "asymmetricKeyLifetime", lifetime, policy.certificate_lifetime_capped_for_apps_created_from
                )
            )
        body = {
            "isEnabled": True,
            "applicationRestrictions": {"passwordCredentials": restrictions, "keyCredentials": key_restrictions},
        }
        self._policy_set = True
        self.stand_in.admin("PUT", f"/tenants/{self.tenant_id}/app-management-policy", body)

    def _apply(self) -> None:
        body: dict[str, Any] = {"rules": self._rules, "seed": 0}
        if self._lag_ms:
            body["replication_lag_ms"] = self._lag_ms
        self.stand_in.admin("PUT", "/faults", body)

    async def close(self) -> None:
        if self._policy_set:
            self.stand_in.admin("PUT", f"/tenants/{self.tenant_id}/app-management-policy", DEFAULT_POLICY)
        await self.token_check.close()
        for resource in (self.graph, self.key_vault, self.arm, self.identity):
            await resource.close()


def _restriction(kind: str, max_lifetime: str | None, since: datetime | None) -> dict[str, Any]:
    return {
        "restrictionType": kind,
        "state": "enabled",
        "maxLifetime": max_lifetime,
        "restrictForAppsCreatedAfterDateTime": since.strftime("%Y-%m-%dT%H:%M:%SZ") if since else None,
    }


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xfail_on(implementation, reason): the case is known to fail on one implementation only (strict xfail there)",
    )


@pytest.fixture(scope="session")
def managed_identity_env(stand_in: StandIn) -> Iterator[None]:
    """azure-identity reads IDENTITY_ENDPOINT/IDENTITY_HEADER from the environment at every token request."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in stand_in.identity_env().items():
            patch.setenv(name, value)
        yield


@pytest.fixture(params=["fake", "stand-in"])
async def ports(request: pytest.FixtureRequest) -> AsyncIterator[Ports]:
    """The ports under contract: the fakes, then the real adapters on the stand-in."""
    for marker in request.node.iter_markers("xfail_on"):
        if marker.args[0] == request.param:
            request.applymarker(pytest.mark.xfail(strict=True, reason=marker.kwargs["reason"]))
    if request.param == "fake":
        yield FakePorts()
        return
    request.getfixturevalue("managed_identity_env")
    stand_in: StandIn = request.getfixturevalue("clean_faults")  # no faults before, none left behind
    world = StandInPorts(stand_in)
    try:
        yield world
    finally:
        await world.close()
