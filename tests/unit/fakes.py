"""In-memory stand-ins for the onboarding use case's ports, with failure switches.

Every fake counts its calls (`calls["add_password"]`) and can be told to fail:

- `fail_next(operation, error, times=1, when=None)` raises `error` from the next matching
  call(s) of that method *before* it does anything (a refused or never-sent request);
- `fail_after(operation, error, times=1, when=None)` lets the call do its work and then raises
  (a lost response: the write happened, the caller does not know it).

`when` narrows a switch to calls whose arguments match, e.g. only the vault write of the
client secret: `when=lambda call: str(call["name"]).endswith("-client-secret")`.

The directory also models Entra's replication lag: with `replication_steps = N`, the next N
reads that touch a newly created application or service principal see it as missing
(`NotReplicatedYet`, or `None` from `find_*`). `settle()` ends every lag at once.

Nothing here sleeps: `FakeClock.sleep` waits on a virtual clock (concurrent sleeps overlap, as on
a real one), and `FakeClock.now` (the wall clock the use case and the directory see) moves with it.

For rotation, `make_rotation` wires `shared.usecases.rotation.Rotation` and `Onboarding` (to set up state)
over the same fakes and one lock table, with port calls that yield to the event loop so that
concurrent runs really interleave, a checker that can be held mid-rotation (`hold_proofs`), and
`CountingLocks` to see how many rotations are in flight at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from shared.adapters.locks import ProcessLocks
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.errors import SecretLifetimeExceedsPolicy, SecretsForbiddenByPolicy, UpstreamError
from shared.domain.model import (
    AppRegistration,
    Assignment,
    NewPassword,
    PasswordInfo,
    PasswordPolicy,
    ResourceApi,
    RoleRef,
    Secret,
    SecretKind,
    SecretSummary,
    StoredSecret,
)
from shared.domain.ports import (
    ApplicationSpec,
    CredentialChecker,
    Directory,
    GrantResult,
    NameHeldByDeletedApplication,
    NotReplicatedYet,
    Vault,
)
from shared.domain.retry import Clock
from shared.settings import Settings, load_settings
from shared.usecases.credentials import CONTENT_TYPES, secret_name
from shared.usecases.onboarding import Onboarding
from shared.usecases.rotation import Rotation

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
DEFENDER_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"
LOG_ANALYTICS_APP_ID = "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5"
RESOURCE_NAMES = {
    GRAPH_APP_ID: "Microsoft Graph",
    DEFENDER_APP_ID: "WindowsDefenderATP",
    LOG_ANALYTICS_APP_ID: "Log Analytics API",
}
# Roles each resource offers besides the catalog's, so a tenant never offers exactly the profile.
EXTRA_ROLES = {
    GRAPH_APP_ID: ("Application.Read.All", "Mail.Read"),
    DEFENDER_APP_ID: ("Vulnerability.Read.All",),
    LOG_ANALYTICS_APP_ID: ("Data.Write",),
}

TENANT = "11111111-2222-4333-8444-555555555555"
HOME_TENANT = "99999999-8888-4777-8666-555555555555"
VAULT_URL = "https://vault.example"
BASE_ENV: dict[str, str] = {"KEY_VAULT_URL": VAULT_URL, "HOME_TENANT_ID": HOME_TENANT}
START = datetime(2025, 1, 15, 9, 0, tzinfo=UTC)

_NAMESPACE = uuid.UUID("6f1c1a52-94a5-4c55-9f5e-2b1f3f7d0a11")

Call = Mapping[str, object]
When = Callable[[Call], bool]


def role_id(resource_app_id: str, value: str) -> str:
    """The app role id of `value` on a resource API, the same in every tenant: the one the shipped catalog
    reviewed (as the real resource offers it), else a made-up stable one."""
    reviewed = _reviewed_role_ids().get((resource_app_id, value))
    return reviewed or str(uuid.uuid5(_NAMESPACE, f"role/{resource_app_id}/{value}"))


@functools.cache
def _reviewed_role_ids() -> dict[tuple[str, str], str]:
    return {
        (r.resource_app_id, value): role
        for profile in load_catalog()
        for r in profile.permissions
        for value, role in r.role_ids.items()
    }


def resource_object_id(tenant_id: str, resource_app_id: str) -> str:
    """The made-up object id of a resource API's service principal in one tenant."""
    return str(uuid.uuid5(_NAMESPACE, f"sp/{tenant_id}/{resource_app_id}"))


# --- failure switches -------------------------------------------------------------------------


@dataclass
class _Rule:
    error: Exception
    times: int
    when: When | None


class FaultSwitches:
    """Call counting and fail-before / fail-after switches, shared by every fake."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, Call]] = []  # every call, in order, with its arguments
        self._before: dict[str, list[_Rule]] = defaultdict(list)
        self._after: dict[str, list[_Rule]] = defaultdict(list)

    def fail_next(self, operation: str, error: Exception, times: int = 1, when: When | None = None) -> None:
        """The next `times` matching calls of `operation` raise `error` without doing anything."""
        self._known(operation)
        self._before[operation].append(_Rule(error, times, when))

    def fail_after(self, operation: str, error: Exception, times: int = 1, when: When | None = None) -> None:
        """The next `times` matching calls of `operation` do their work, then raise `error`."""
        self._known(operation)
        self._after[operation].append(_Rule(error, times, when))

    def unfired(self) -> list[str]:
        """Switches that have not fired yet (a test whose fault never fired tests nothing)."""
        return [
            f"{kind} {operation}"
            for kind, rules in (("fail_next", self._before), ("fail_after", self._after))
            for operation, pending in rules.items()
            for rule in pending
            if rule.times > 0
        ]

    def calls_of(self, operation: str) -> list[Call]:
        """The arguments of every call of `operation`, in order."""
        return [call for name, call in self.log if name == operation]

    def clear_faults(self) -> None:
        self._before.clear()
        self._after.clear()

    def _known(self, operation: str) -> None:
        if operation.startswith("_") or not callable(getattr(self, operation, None)):
            raise AttributeError(f"{type(self).__name__} has no operation {operation!r}")

    def _enter(self, operation: str, **call: object) -> None:
        self.calls[operation] += 1
        self.log.append((operation, call))
        self._fire(self._before, operation, call)

    def _leave(self, operation: str, **call: object) -> None:
        self._fire(self._after, operation, call)

    @staticmethod
    def _fire(rules: dict[str, list[_Rule]], operation: str, call: Call) -> None:
        for rule in rules.get(operation, ()):
            if rule.times > 0 and (rule.when is None or rule.when(call)):
                rule.times -= 1
                raise rule.error


# --- clock ------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time and wall time that move only when told to, or when the code under test sleeps.

    Sleeps are virtual, and tasks that sleep at the same time sleep side by side, as they would on
    a real clock: a sleeper wakes when every runnable task has run as far as it can and its wake-up
    is the earliest due, and time jumps to it. Two branches that each wait out 10 s of replication
    concurrently take 10 s, not 20.
    """

    RUNNABLE_STEPS = 100  # loop turns a pending wake-up waits for runnable tasks to block

    def __init__(self, start: datetime = START) -> None:
        self.start = start
        self.elapsed = 0.0
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._driver: asyncio.Task[None] | None = None

    def monotonic(self) -> float:
        return self.elapsed

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.elapsed + max(0.0, seconds), next(self._order), woken))
        if self._driver is None or self._driver.done():
            self._driver = asyncio.get_running_loop().create_task(self._wake_in_order())
        await woken

    async def _wake_in_order(self) -> None:
        while self._sleepers:
            for _ in range(self.RUNNABLE_STEPS):
                await asyncio.sleep(0)
            due, _, woken = heapq.heappop(self._sleepers)
            self.elapsed = max(self.elapsed, due)
            if not woken.done():
                woken.set_result(None)

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def advance(self, *, seconds: float = 0.0, minutes: float = 0.0, days: float = 0.0) -> None:
        self.elapsed += seconds + 60 * minutes + 86400 * days

    @property
    def slept(self) -> float:
        return sum(self.sleeps)


# --- directory --------------------------------------------------------------------------------


@dataclass
class FakePassword:
    info: PasswordInfo
    text: str


SERVICE_OBJECT_ID = "5e41ce00-0000-4000-8000-00000000f00d"  # this service's principal, in every fake tenant


@dataclass
class FakeApp:
    object_id: str
    app_id: str
    unique_name: str
    display_name: str
    tags: tuple[str, ...]
    notes: str
    required_roles: frozenset[RoleRef]
    passwords: dict[str, FakePassword] = field(default_factory=dict)
    owners: set[str] = field(default_factory=lambda: {SERVICE_OBJECT_ID})  # the creator owns what it creates
    key_credential_ids: tuple[str, ...] = ()
    federated_credential_ids: tuple[str, ...] = ()
    sign_in_audience: str = "AzureADMyOrg"

    def registration(self) -> AppRegistration:
        return AppRegistration(
            object_id=self.object_id,
            app_id=self.app_id,
            unique_name=self.unique_name,
            display_name=self.display_name,
            required_roles=self.required_roles,
            passwords=tuple(p.info for p in self.passwords.values()),
            tags=self.tags,
            notes=self.notes,
            sign_in_audience=self.sign_in_audience,
            key_credential_ids=self.key_credential_ids,
        )


@dataclass
class FakeTenant:
    resources: dict[str, ResourceApi]
    policy: PasswordPolicy
    apps: dict[str, FakeApp] = field(default_factory=dict)  # by uniqueName
    service_principals: dict[str, str] = field(default_factory=dict)  # appId -> object id
    assignments: dict[str, dict[tuple[str, str], Assignment]] = field(default_factory=dict)  # by principal id
    deleted_apps: dict[str, FakeApp] = field(default_factory=dict)  # by object id

    def app_by_object_id(self, object_id: str) -> FakeApp | None:
        return next((a for a in self.apps.values() if a.object_id == object_id), None)

    def app_by_app_id(self, app_id: str) -> FakeApp | None:
        return next((a for a in self.apps.values() if a.app_id == app_id), None)


class FakeDirectory(FaultSwitches):
    """Entra ID for several tenants, in memory, implementing `shared.domain.ports.Directory`."""

    def __init__(self, catalog: Catalog, now: Callable[[], datetime], replication_steps: int = 0) -> None:
        super().__init__()
        self.catalog = catalog
        self.now = now
        self.replication_steps = replication_steps
        self.tenants: dict[str, FakeTenant] = {}
        self.minted: list[FakePassword] = []  # every password ever added (removed ones too), in order
        self._lag: dict[tuple[str, str], int] = {}
        self._grants_throttled: list[float] = []
        self._serial = itertools.count(1)

    # --- seeding and inspection (not part of the port) ---
    def add_tenant(
        self,
        tenant_id: str,
        *,
        without: Iterable[str] = (),
        not_offering: Mapping[str, Iterable[str]] | None = None,
        policy: PasswordPolicy | None = None,
    ) -> FakeTenant:
        """A tenant with Graph, WindowsDefenderATP and Log Analytics, minus the resource app ids in `without`
        and minus the role values in `not_offering[resource app id]`."""
        offered: dict[str, set[str]] = {app_id: set(extra) for app_id, extra in EXTRA_ROLES.items()}
        for profile in self.catalog:
            for permissions in profile.permissions:
                offered.setdefault(permissions.resource_app_id, set()).update(permissions.roles)
        for app_id, values in (not_offering or {}).items():
            offered[app_id] -= set(values)
        resources = {
            app_id: ResourceApi(
                object_id=resource_object_id(tenant_id, app_id),
                app_id=app_id,
                display_name=RESOURCE_NAMES.get(app_id, app_id),
                roles_by_value={value: role_id(app_id, value) for value in sorted(values)},
            )
            for app_id, values in offered.items()
            if app_id not in set(without)
        }
        tenant = FakeTenant(resources, policy or PasswordPolicy())
        self.tenants[tenant_id] = tenant
        return tenant

    def app(self, tenant_id: str, unique_name: str) -> FakeApp | None:
        return self.tenants[tenant_id].apps.get(unique_name)

    def apps(self, tenant_id: str) -> list[FakeApp]:
        return list(self.tenants[tenant_id].apps.values())

    def service_principal_of(self, tenant_id: str, app_id: str) -> str | None:
        return self.tenants[tenant_id].service_principals.get(app_id)

    def granted(self, tenant_id: str, principal_id: str) -> set[tuple[str, str]]:
        """(resource SP object id, app role id) pairs granted to a principal."""
        return set(self.tenants[tenant_id].assignments.get(principal_id, {}))

    def granted_values(self, tenant_id: str, app_id: str) -> dict[str, set[str]]:
        """Role values granted to an app's service principal, by resource app id."""
        tenant = self.tenants[tenant_id]
        principal = tenant.service_principals.get(app_id)
        by_object = {api.object_id: api for api in tenant.resources.values()}
        found: dict[str, set[str]] = defaultdict(set)
        for resource_id, app_role_id in tenant.assignments.get(principal or "", {}):
            api = by_object[resource_id]
            found[api.app_id] |= {value for value, rid in api.roles_by_value.items() if rid == app_role_id}
        return dict(found)

    def revoke_by_hand(self, tenant_id: str, principal_id: str, pair: tuple[str, str]) -> None:
        """What a customer's admin does in the portal: remove one granted permission."""
        del self.tenants[tenant_id].assignments[principal_id][pair]

    def is_current_password(self, tenant_id: str, app_id: str, text: str) -> bool:
        app = self.tenants[tenant_id].app_by_app_id(app_id)
        now = self.now()
        return app is not None and any(
            p.text == text and p.info.start <= now < p.info.end for p in app.passwords.values()
        )

    def throttle_grants(self, retry_after: float, times: int = 1) -> None:
        """The next `times` grant batches are answered 429 per item, with this Retry-After (as Graph's $batch does)."""
        self._grants_throttled += [retry_after] * times

    def settle(self) -> None:
        """Entra caught up: every object written so far is visible everywhere."""
        self._lag.clear()

    # --- replication lag ---
    def _written(self, kind: str, object_id: str) -> None:
        if self.replication_steps > 0:
            self._lag[(kind, object_id)] = self.replication_steps

    def _lagging(self, kind: str, object_id: str) -> bool:
        """True (and one step fewer to go) while a read should not see this object yet."""
        left = self._lag.get((kind, object_id), 0)
        if left <= 0:
            return False
        self._lag[(kind, object_id)] = left - 1
        return True

    def _tenant(self, tenant_id: str) -> FakeTenant:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise UpstreamError("unknown tenant", "graph", 400, "InvalidTenant", tenantId=tenant_id)
        return tenant

    def _id(self, kind: str) -> str:
        return str(uuid.uuid5(_NAMESPACE, f"{kind}/{next(self._serial)}"))

    # --- the port ---
    async def resource_api(self, tenant_id: str, resource_app_id: str) -> ResourceApi | None:
        self._enter("resource_api", tenant_id=tenant_id, resource_app_id=resource_app_id)
        return self._tenant(tenant_id).resources.get(resource_app_id)

    async def password_policy(self, tenant_id: str) -> PasswordPolicy:
        self._enter("password_policy", tenant_id=tenant_id)
        return self._tenant(tenant_id).policy

    async def find_application(self, tenant_id: str, unique_name: str) -> AppRegistration | None:
        self._enter("find_application", tenant_id=tenant_id, unique_name=unique_name)
        app = self._tenant(tenant_id).apps.get(unique_name)
        if app is None or self._lagging("application", app.object_id):
            return None
        return app.registration()

    async def upsert_application(
        self, tenant_id: str, unique_name: str, spec: ApplicationSpec
    ) -> tuple[AppRegistration, bool]:
        call = {"tenant_id": tenant_id, "unique_name": unique_name, "spec": spec}
        self._enter("upsert_application", **call)
        tenant = self._tenant(tenant_id)
        required = frozenset(RoleRef(resource, role) for resource, roles in spec.required_roles for role in roles)
        app = tenant.apps.get(unique_name)
        held = next((a.object_id for a in tenant.deleted_apps.values() if a.unique_name == unique_name), None)
        if app is None and held is not None:
            raise NameHeldByDeletedApplication(held)  # deleted items keep the name (emulator/FIDELITY.md)
        if app is None:
            app = FakeApp(
                self._id("application"), self._id("client"), unique_name, spec.display_name, spec.tags, spec.notes,
                required,
            )  # fmt: skip
            tenant.apps[unique_name] = app
            self._written("application", app.object_id)
            self._leave("upsert_application", **call)
            return app.registration(), True
        app.display_name, app.tags, app.notes, app.required_roles = spec.display_name, spec.tags, spec.notes, required
        self._leave("upsert_application", **call)
        # Graph answers 204 to a converge; the adapter reads the app back, which may lag.
        if self._lagging("application", app.object_id):
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return app.registration(), False

    async def update_application(self, tenant_id: str, app_object_id: str, spec: ApplicationSpec) -> None:
        self._enter("update_application", tenant_id=tenant_id, app_object_id=app_object_id, spec=spec)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        app.display_name, app.tags, app.notes = spec.display_name, spec.tags, spec.notes
        app.sign_in_audience = spec.sign_in_audience
        app.required_roles = frozenset(RoleRef(res, role) for res, roles in spec.required_roles for role in roles)
        self._leave("update_application", tenant_id=tenant_id, app_object_id=app_object_id, spec=spec)

    async def application_owners(self, tenant_id: str, app_object_id: str) -> frozenset[str]:
        self._enter("application_owners", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return frozenset(app.owners)

    async def federated_credentials(self, tenant_id: str, app_object_id: str) -> tuple[str, ...]:
        self._enter("federated_credentials", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return app.federated_credential_ids

    async def caller_object_id(self, tenant_id: str) -> str:
        self._enter("caller_object_id", tenant_id=tenant_id)
        return SERVICE_OBJECT_ID

    async def find_service_principal(self, tenant_id: str, app_id: str) -> str | None:
        self._enter("find_service_principal", tenant_id=tenant_id, app_id=app_id)
        principal = self._tenant(tenant_id).service_principals.get(app_id)
        if principal is None or self._lagging("service principal", principal):
            return None
        return principal

    async def upsert_service_principal(
        self, tenant_id: str, app_id: str, *, app_is_new: bool = False
    ) -> tuple[str, bool]:
        self._enter("upsert_service_principal", tenant_id=tenant_id, app_id=app_id)
        tenant = self._tenant(tenant_id)
        if not app_is_new and app_id in tenant.service_principals:
            # The adapter reads an existing principal and never writes it.
            existing = tenant.service_principals[app_id]
            self._leave("upsert_service_principal", tenant_id=tenant_id, app_id=app_id)
            if self._lagging("service principal", existing):
                raise NotReplicatedYet("the service principal", "Request_ResourceNotFound")
            return existing, False
        app = tenant.app_by_app_id(app_id)
        if app is None or self._lagging("application", app.object_id):
            raise NotReplicatedYet("the app registration", "NoBackingApplicationObject")
        principal = tenant.service_principals.get(app_id)
        if principal is None:
            principal = tenant.service_principals[app_id] = self._id("service principal")
            tenant.assignments[principal] = {}
            self._written("service principal", principal)
            self._leave("upsert_service_principal", tenant_id=tenant_id, app_id=app_id)
            return principal, True
        self._leave("upsert_service_principal", tenant_id=tenant_id, app_id=app_id)
        if self._lagging("service principal", principal):
            raise NotReplicatedYet("the service principal", "Request_ResourceNotFound")
        return principal, False

    async def assignments(self, tenant_id: str, principal_id: str) -> list[Assignment]:
        self._enter("assignments", tenant_id=tenant_id, principal_id=principal_id)
        granted = self._tenant(tenant_id).assignments.get(principal_id)
        if granted is None or self._lagging("service principal", principal_id):
            raise NotReplicatedYet("the service principal", "Request_ResourceNotFound")
        return list(granted.values())

    async def grant(self, tenant_id: str, principal_id: str, roles: list[tuple[str, str]]) -> GrantResult:
        self._enter("grant", tenant_id=tenant_id, principal_id=principal_id, roles=roles)
        tenant = self._tenant(tenant_id)
        granted = tenant.assignments.get(principal_id)
        if granted is None or self._lagging("service principal", principal_id):
            return GrantResult((), tuple(role for _, role in roles))  # 404 per item while it replicates
        if self._grants_throttled:
            return GrantResult((), tuple(role for _, role in roles), self._grants_throttled.pop(0))
        offered = {(api.object_id, rid) for api in tenant.resources.values() for rid in api.roles_by_value.values()}
        for pair in roles:
            if pair not in offered:
                raise UpstreamError("Graph refused to grant a permission", "graph", 400, "InvalidAppRole")
            if pair not in granted:
                granted[pair] = Assignment(self._id("assignment"), *pair)
        self._leave("grant", tenant_id=tenant_id, principal_id=principal_id, roles=roles)
        return GrantResult(tuple(role for _, role in roles), ())

    async def revoke(self, tenant_id: str, resource_object_id: str, assignment_id: str) -> bool:
        self._enter("revoke", tenant_id=tenant_id, resource_object_id=resource_object_id, assignment_id=assignment_id)
        for granted in self._tenant(tenant_id).assignments.values():
            for pair, assignment in list(granted.items()):
                if assignment.id == assignment_id and assignment.resource_object_id == resource_object_id:
                    del granted[pair]
                    return True
        return False

    async def add_password(self, tenant_id: str, app_object_id: str, display_name: str, end: datetime) -> NewPassword:
        call = {"tenant_id": tenant_id, "app_object_id": app_object_id, "display_name": display_name, "end": end}
        self._enter("add_password", **call)
        tenant = self._tenant(tenant_id)
        app = tenant.app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        now = self.now()
        if not tenant.policy.additions_allowed:
            raise SecretsForbiddenByPolicy("CredentialTypeNotAllowedAsPerAppPolicy", tenantId=tenant_id)
        if tenant.policy.max_lifetime_days is not None and end - now > timedelta(days=tenant.policy.max_lifetime_days):
            raise SecretLifetimeExceedsPolicy("CredentialInvalidLifetimeAsPerAppPolicy", tenantId=tenant_id)
        key_id = self._id("password")
        text = f"Fk{len(self.minted):02d}~{uuid.uuid5(_NAMESPACE, 'text/' + key_id).hex}"
        info = PasswordInfo(key_id=key_id, display_name=display_name, hint=text[:3], start=now, end=end)
        password = app.passwords[key_id] = FakePassword(info, text)
        self.minted.append(password)
        self._leave("add_password", **call)
        return NewPassword(info, Secret(text))

    async def remove_password(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        call = {"tenant_id": tenant_id, "app_object_id": app_object_id, "key_id": key_id}
        self._enter("remove_password", **call)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        removed = app is not None and app.passwords.pop(key_id, None) is not None
        self._leave("remove_password", **call)
        return removed

    async def delete_application(self, tenant_id: str, app_object_id: str) -> bool:
        self._enter("delete_application", tenant_id=tenant_id, app_object_id=app_object_id)
        tenant = self._tenant(tenant_id)
        app = tenant.app_by_object_id(app_object_id)
        if app is None:
            return False
        del tenant.apps[next(name for name, a in tenant.apps.items() if a is app)]
        sp = tenant.service_principals.pop(app.app_id, None)  # Entra deletes the home SP with the app
        if sp is not None:
            tenant.assignments.pop(sp, None)
        tenant.deleted_apps[app_object_id] = app
        self._leave("delete_application", tenant_id=tenant_id, app_object_id=app_object_id)
        return True

    async def find_deleted_application(self, tenant_id: str, unique_name: str) -> str | None:
        self._enter("find_deleted_application", tenant_id=tenant_id, unique_name=unique_name)
        deleted = self._tenant(tenant_id).deleted_apps.values()
        return next((a.object_id for a in deleted if a.unique_name == unique_name), None)

    async def purge_deleted_application(self, tenant_id: str, app_object_id: str) -> bool:
        self._enter("purge_deleted_application", tenant_id=tenant_id, app_object_id=app_object_id)
        return self._tenant(tenant_id).deleted_apps.pop(app_object_id, None) is not None


# --- vault ------------------------------------------------------------------------------------


@dataclass
class VaultVersion:
    version: str
    value: str
    content_type: str
    tags: dict[str, str]
    expires: datetime | None


class FakeVault(FaultSwitches):
    """Key Vault secrets in memory, every version kept, implementing `shared.domain.ports.Vault`."""

    def __init__(self, url: str = VAULT_URL) -> None:
        super().__init__()
        self.url = url
        self.versions: dict[str, list[VaultVersion]] = {}
        self.deleted: dict[str, list[VaultVersion]] = {}
        self._serial = itertools.count(1)

    # --- inspection (not part of the port) ---
    def latest(self, name: str) -> VaultVersion | None:
        versions = self.versions.get(name)
        return versions[-1] if versions else None

    def version_count(self, name: str) -> int:
        return len(self.versions.get(name, ()))

    def version_counts(self) -> dict[str, int]:
        return {name: len(versions) for name, versions in self.versions.items()}

    def seed(
        self, name: str, value: str, content_type: str, tags: Mapping[str, str], expires: datetime | None
    ) -> VaultVersion:
        """Put a version straight into the store: not a port call, so neither counted nor faulted."""
        version = VaultVersion(f"v{next(self._serial):04d}", value, content_type, dict(tags), expires)
        self.versions.setdefault(name, []).append(version)
        return version

    def _stored(self, name: str, version: VaultVersion, with_value: bool) -> StoredSecret:
        return StoredSecret(
            name=name,
            version=version.version,
            uri=f"{self.url}/secrets/{name}",
            tags=dict(version.tags),
            expires=version.expires,
            value=Secret(version.value) if with_value else None,
        )

    # --- the port ---
    async def read(self, name: str, with_value: bool = False) -> StoredSecret | None:
        self._enter("read", name=name, with_value=with_value)
        latest = self.latest(name)
        return self._stored(name, latest, with_value) if latest else None

    async def write(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> StoredSecret:
        call = {"name": name, "content_type": content_type, "tags": tags, "expires": expires}
        self._enter("write", **call)
        version = VaultVersion(f"v{next(self._serial):04d}", value, content_type, dict(tags), expires)
        self.versions.setdefault(name, []).append(version)
        self._leave("write", **call)
        return self._stored(name, version, with_value=False)

    async def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        call = {"name": name, "version": version, "tags": tags}
        self._enter("update_tags", **call)
        found = next((v for v in self.versions.get(name, ()) if v.version == version), None)
        if found is None:
            raise UpstreamError("Key Vault failed while updating a secret's tags", "keyvault", 404, "SecretNotFound")
        found.tags = dict(tags)
        self._leave("update_tags", **call)

    async def stored_key_ids(self, name: str) -> set[str]:
        self._enter("stored_key_ids", name=name)
        return {v.tags["key-id"] for v in self.versions.get(name, ()) if "key-id" in v.tags}

    def reference(self, name: str) -> str:
        return f"@Microsoft.KeyVault(SecretUri={self.url}/secrets/{name}/)"

    async def delete(self, name: str) -> bool:
        self._enter("delete", name=name)
        versions = self.versions.pop(name, None)
        if versions is None:
            return False
        self.deleted[name] = versions
        return True

    async def purge(self, name: str) -> bool:
        self._enter("purge", name=name)
        return self.deleted.pop(name, None) is not None

    async def client_secrets(self) -> AsyncIterator[SecretSummary]:
        self._enter("client_secrets")
        for name in sorted(self.versions):
            latest = self.versions[name][-1]
            if latest.tags.get("kind") == "client-secret" and latest.tags.get("managed-by"):
                yield SecretSummary(name, dict(latest.tags), latest.expires)


# --- credential checker -----------------------------------------------------------------------


class FakeChecker(FaultSwitches):
    """A token request against the FakeDirectory: the token's `roles` are what is really granted."""

    def __init__(self, directory: FakeDirectory, catalog: Catalog) -> None:
        super().__init__()
        self.directory = directory
        self.not_replicated = 0
        self.rejected = 0
        self._resources = {p.token_scope: p.resource_app_id for profile in catalog for p in profile.permissions}

    def not_replicated_for(self, attempts: int) -> None:
        """The next `attempts` token requests fail as Entra does while a new secret replicates."""
        self.not_replicated = attempts

    async def granted_roles(self, tenant_id: str, client_id: str, secret: Secret, scope: str) -> set[str]:
        self._enter("granted_roles", tenant_id=tenant_id, client_id=client_id, scope=scope)
        if self.not_replicated > 0:
            self.not_replicated -= 1
            raise NotReplicatedYet("the new client secret", "AADSTS7000215")
        if not self.directory.is_current_password(tenant_id, client_id, secret.reveal()):
            self.rejected += 1
            raise UpstreamError("Entra refused the new credential", "entra", 401, "AADSTS7000215")
        resource = self._resources[scope]
        return self.directory.granted_values(tenant_id, client_id).get(resource, set())


# --- wiring -----------------------------------------------------------------------------------


class Harness(NamedTuple):
    onboarding: Onboarding
    directory: FakeDirectory
    vault: FakeVault
    checker: FakeChecker
    clock: FakeClock


def make_settings(**overrides: str | float) -> Settings:
    """Settings through `load_settings`, from environment-style names: `ORPHAN_GRACE_MINUTES=5`."""
    return load_settings(BASE_ENV | {name: str(value) for name, value in overrides.items()})


def make_onboarding(**settings_overrides: str | float) -> Harness:
    """The use case over fresh fakes, with `TENANT` seeded with every resource API the catalog uses."""
    settings = make_settings(**settings_overrides)
    catalog = load_catalog()
    clock = FakeClock()
    directory = FakeDirectory(catalog, clock.now)
    directory.add_tenant(TENANT)
    vault = FakeVault()
    checker = FakeChecker(directory, catalog)
    ports: tuple[Directory, Vault, CredentialChecker, Clock] = (directory, vault, checker, clock)
    onboarding = Onboarding(settings, catalog, *ports, now=clock.now)
    return Harness(onboarding, directory, vault, checker, clock)


# --- rotation ---------------------------------------------------------------------------------


class YieldingDirectory(FakeDirectory):
    """A FakeDirectory whose port calls first yield to the event loop, as a network call would."""

    async def password_policy(self, tenant_id: str) -> PasswordPolicy:
        await asyncio.sleep(0)
        return await super().password_policy(tenant_id)

    async def find_application(self, tenant_id: str, unique_name: str) -> AppRegistration | None:
        await asyncio.sleep(0)
        return await super().find_application(tenant_id, unique_name)

    async def add_password(self, tenant_id: str, app_object_id: str, display_name: str, end: datetime) -> NewPassword:
        await asyncio.sleep(0)
        return await super().add_password(tenant_id, app_object_id, display_name, end)

    async def remove_password(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        await asyncio.sleep(0)
        return await super().remove_password(tenant_id, app_object_id, key_id)


class YieldingVault(FakeVault):
    """A FakeVault whose port calls first yield to the event loop."""

    async def read(self, name: str, with_value: bool = False) -> StoredSecret | None:
        await asyncio.sleep(0)
        return await super().read(name, with_value)

    async def write(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> StoredSecret:
        await asyncio.sleep(0)
        return await super().write(name, value, content_type, tags, expires)

    async def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        await asyncio.sleep(0)
        await super().update_tags(name, version, tags)

    async def stored_key_ids(self, name: str) -> set[str]:
        await asyncio.sleep(0)
        return await super().stored_key_ids(name)

    async def client_secrets(self) -> AsyncIterator[SecretSummary]:
        """The same listing, a page of 25 at a time: the event loop runs between pages, as over HTTP."""
        listed = 0
        async for summary in super().client_secrets():
            if listed % 25 == 0:
                await asyncio.sleep(0)
            listed += 1
            yield summary


class HoldableChecker(FakeChecker):
    """A FakeChecker that yields first, and after `hold_proofs(n)` makes the next n token requests wait
    until `release_proofs()`: a rotation held there has minted its new secret and not stored it yet."""

    def __init__(self, directory: FakeDirectory, catalog: Catalog) -> None:
        super().__init__(directory, catalog)
        self._open = asyncio.Event()
        self._open.set()
        self._to_hold = 0
        self.held = 0  # token requests that are waiting now

    def hold_proofs(self, times: int = 1) -> None:
        self._to_hold = times
        self._open.clear()

    def release_proofs(self) -> None:
        self._to_hold = 0
        self._open.set()

    async def granted_roles(self, tenant_id: str, client_id: str, secret: Secret, scope: str) -> set[str]:
        await asyncio.sleep(0)
        if self._to_hold > 0:
            self._to_hold -= 1
            self.held += 1
            try:
                await self._open.wait()
            finally:
                self.held -= 1
        return await super().granted_roles(tenant_id, client_id, secret, scope)


class CountingLocks:
    """`shared.adapters.locks.ProcessLocks`, counting its holders: rotations in flight, and calls that had to wait."""

    def __init__(self) -> None:
        self.inner = ProcessLocks()
        self.in_flight = 0
        self.max_in_flight = 0
        self.entered = 0  # calls of hold(), held or refused
        self.contended = 0  # calls that found another caller holding, or waiting for, the same key
        self.on_enter: Callable[[str], None] | None = None  # called as hold() is entered, before any wait
        self._callers: Counter[str] = Counter()  # by key: callers inside hold(), waiting or holding

    @contextlib.asynccontextmanager
    async def hold(self, key: str, wait_seconds: float) -> AsyncIterator[None]:
        self.entered += 1
        self.contended += self._callers[key] > 0
        if self.on_enter is not None:
            self.on_enter(key)
        self._callers[key] += 1
        try:
            async with self.inner.hold(key, wait_seconds):
                self.in_flight += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                try:
                    yield
                finally:
                    self.in_flight -= 1
        finally:
            self._callers[key] -= 1


class RotationHarness(NamedTuple):
    rotation: Rotation
    onboarding: Onboarding  # the same fakes and locks: onboard to set up what rotation finds
    directory: YieldingDirectory
    vault: YieldingVault
    checker: HoldableChecker
    clock: FakeClock
    locks: CountingLocks


def make_rotation(*, tenants: Iterable[str] = (), **settings_overrides: str | float) -> RotationHarness:
    """Rotation (and Onboarding) over fresh yielding fakes sharing one lock table; `TENANT` and
    `tenants` are seeded with every resource API the catalog uses."""
    settings = make_settings(**settings_overrides)
    catalog = load_catalog()
    clock = FakeClock()
    directory = YieldingDirectory(catalog, clock.now)
    for tenant_id in (TENANT, *tenants):
        directory.add_tenant(tenant_id)
    vault = YieldingVault()
    checker = HoldableChecker(directory, catalog)
    locks = CountingLocks()
    ports: tuple[Directory, Vault, CredentialChecker, Clock] = (directory, vault, checker, clock)
    rotation = Rotation(settings, catalog, *ports, locks, now=clock.now)
    onboarding = Onboarding(settings, catalog, *ports, now=clock.now, locks=locks)
    return RotationHarness(rotation, onboarding, directory, vault, checker, clock, locks)


def seed_client_secret(
    vault: FakeVault, settings: Settings, tenant_id: str, integration: str, expires: datetime | None
) -> str:
    """A managed client secret put straight into the vault, tagged as onboarding tags it (no app behind it)."""
    name = secret_name(settings, tenant_id, integration, SecretKind.CLIENT_SECRET)
    tags = {
        "managed-by": settings.name_prefix,
        "tenant-id": tenant_id,
        "integration": integration,
        "kind": SecretKind.CLIENT_SECRET.value,
        "key-id": str(uuid.uuid5(_NAMESPACE, f"seeded/{name}")),
        "verified": "true",
    }
    vault.seed(
        name, f"seeded~{uuid.uuid5(_NAMESPACE, name).hex}", CONTENT_TYPES[SecretKind.CLIENT_SECRET], tags, expires
    )
    return name
