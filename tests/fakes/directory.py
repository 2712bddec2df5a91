"""`FakeDirectory`: Entra ID for several tenants, in memory, implementing `shared.domain.ports.Directory`.

Owns the fake's model of a tenant (resource APIs, the app management policy, apps by uniqueName, service
principals, grants, deleted items) and its switches, each answering as `shared.adapters.graph.GraphDirectory`
does against Graph:

- replication lag: with `replication_steps = N`, the next N calls that touch a newly created application
  or service principal see it as missing (`None` from `find_*`, `NotReplicatedYet` from dependent calls,
  pending grants, False from a delete); `settle()` ends every lag at once;
- throttling: `throttle(operation, retry_after)` (and `throttle_grants`) for Graph's 429 outlasting the
  SDK's own retries;
- policy: `add_tenant(policy=...)` or `set_policy`, enforced by `add_password` (and, for a certificate's
  validity, `add_key`) as Entra enforces it on an app created at the app's `created`.

Apps hold client secrets (`FakePassword`: the info and the text) and certificates (`FakeKey`: the key
credential as Graph lists it, and the certificate's DER, which Graph keeps and `FakeChecker` checks
client assertions against).

`YieldingDirectory` is the same directory whose port calls yield to the event loop first, as a network call
would. tests/contract/ checks the fake against the real adapter on the stand-in, case by case.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from shared.domain.catalog import Catalog
from shared.domain.errors import (
    CertificatesRefusedByPolicy,
    SecretLifetimeExceedsPolicy,
    SecretsForbiddenByPolicy,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.domain.model import (
    AppRegistration,
    Assignment,
    FederatedTrust,
    KeyInfo,
    NewKey,
    NewPassword,
    PasswordInfo,
    PasswordPolicy,
    ResourceApi,
    RoleRef,
    Secret,
)
from shared.domain.ports import (
    ApplicationSpec,
    GrantResult,
    NameHeldByDeletedApplication,
    NotReplicatedYet,
    Throttled,
)
from tests.fakes.ids import EXTRA_ROLES, NAMESPACE, RESOURCE_NAMES, resource_object_id, role_id
from tests.fakes.switches import FaultSwitches


@dataclass
class FakePassword:
    info: PasswordInfo
    text: str


@dataclass
class FakeKey:
    """A certificate on an app: its key credential as Graph lists it, and the certificate's DER."""

    info: KeyInfo
    der: bytes


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
    keys: dict[str, FakeKey] = field(default_factory=dict)  # certificates (keyCredentials), by keyId
    federated_credential_ids: tuple[str, ...] = ()
    trusts: dict[str, FederatedTrust] = field(default_factory=dict)  # federated credentials in full (connectors)
    sign_in_audience: str = "AzureADMyOrg"
    created: datetime | None = None  # createdDateTime, to the second as Graph gives it

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
            keys=tuple(k.info for k in self.keys.values()),
            created=self.created,
        )


@dataclass
class _Throttling:
    retry_after: float
    times: int | None  # None: until cleared


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
        self.keys_added: list[FakeKey] = []  # every certificate ever put on an app (removed ones too), in order
        self._lag: dict[tuple[str, str], int] = {}
        self._throttled: dict[str, list[_Throttling]] = defaultdict(list)
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

    def current_key(self, tenant_id: str, app_id: str, key_id: str) -> FakeKey | None:
        """The app's certificate under this keyId, if it is there and valid now."""
        app = self.tenants[tenant_id].app_by_app_id(app_id)
        key = app.keys.get(key_id) if app is not None else None
        now = self.now()
        return key if key is not None and key.info.start <= now < key.info.end else None

    def set_policy(self, tenant_id: str, policy: PasswordPolicy) -> None:
        """The tenant's app management policy, as the adapter reads it from Graph (`password_policy`)."""
        self.tenants[tenant_id].policy = policy

    def throttle(self, operation: str, retry_after: float, times: int | None = None) -> None:
        """Graph answers the next `times` calls of `operation` (None: every one, until `clear_faults`) with 429
        and this Retry-After, for longer than the SDK's own retries ride out. The port answers as
        `shared.adapters.graph.GraphDirectory` does then (tests/contract/test_throttling.py checks it):
        `add_password` (sent without SDK retries) raises `Throttled`; `grant` leaves every role pending
        with the Retry-After (Graph's $batch throttles item by item); any other call raises
        `UpstreamUnavailable` (status 429, the Retry-After)."""
        self._known(operation)
        self._throttled[operation].append(_Throttling(retry_after, times))

    def throttle_grants(self, retry_after: float, times: int = 1) -> None:
        """The next `times` grant batches are answered 429 per item, with this Retry-After (as Graph's $batch does)."""
        self.throttle("grant", retry_after, times)

    def clear_faults(self) -> None:
        super().clear_faults()
        self._throttled.clear()

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

    # --- throttling ---
    def _throttling(self, operation: str) -> float | None:
        """The Retry-After of a throttling switch that fires on this call of `operation`, if one does."""
        for rule in self._throttled.get(operation, ()):
            if rule.times is None or rule.times > 0:
                if rule.times is not None:
                    rule.times -= 1
                return rule.retry_after
        return None

    def _enter(self, operation: str, **call: object) -> None:
        super()._enter(operation, **call)
        if operation in ("add_password", "grant"):
            return  # each answers throttling its own way
        if (retry_after := self._throttling(operation)) is not None:
            raise UpstreamUnavailable(
                f"Graph is throttling or unavailable while calling {operation}", "graph", 429, "TooManyRequests",
                retry_after=retry_after,
            )  # fmt: skip

    def _tenant(self, tenant_id: str) -> FakeTenant:
        tenant = self.tenants.get(tenant_id)
        if tenant is None:
            raise UpstreamError("unknown tenant", "graph", 400, "InvalidTenant", tenantId=tenant_id)
        return tenant

    def _id(self, kind: str) -> str:
        return str(uuid.uuid5(NAMESPACE, f"{kind}/{next(self._serial)}"))

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
                required, created=self.now().replace(microsecond=0),
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
        if app is None or self._lagging("application", app_object_id):  # a PATCH by object id reads it first
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        app.display_name, app.tags, app.notes = spec.display_name, spec.tags, spec.notes
        app.sign_in_audience = spec.sign_in_audience
        app.required_roles = frozenset(RoleRef(res, role) for res, roles in spec.required_roles for role in roles)
        self._leave("update_application", tenant_id=tenant_id, app_object_id=app_object_id, spec=spec)

    async def application_owners(self, tenant_id: str, app_object_id: str) -> frozenset[str]:
        self._enter("application_owners", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return frozenset(app.owners)

    async def federated_trusts(self, tenant_id: str, app_object_id: str) -> tuple[FederatedTrust, ...]:
        self._enter("federated_trusts", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        return tuple(app.trusts.values())

    async def add_federated_trust(self, tenant_id: str, app_object_id: str, trust: FederatedTrust) -> None:
        self._enter("add_federated_trust", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None:
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        trust_id = str(uuid.uuid4())
        app.trusts[trust_id] = replace(trust, id=trust_id)
        app.federated_credential_ids = (*app.federated_credential_ids, trust_id)

    async def remove_federated_trust(self, tenant_id: str, app_object_id: str, trust_id: str) -> bool:
        self._enter("remove_federated_trust", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None or trust_id not in app.trusts:
            return False
        del app.trusts[trust_id]
        app.federated_credential_ids = tuple(i for i in app.federated_credential_ids if i != trust_id)
        return True

    async def federated_credentials(self, tenant_id: str, app_object_id: str) -> tuple[str, ...]:
        self._enter("federated_credentials", tenant_id=tenant_id, app_object_id=app_object_id)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):
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
        if (retry_after := self._throttling("grant")) is not None:
            return GrantResult((), tuple(role for _, role in roles), retry_after)
        offered = {(api.object_id, rid) for api in tenant.resources.values() for rid in api.roles_by_value.values()}
        for pair in roles:
            if pair not in offered:
                raise UpstreamError("Graph refused to grant a permission", "graph", 400, "Request_BadRequest")
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
        if (retry_after := self._throttling("add_password")) is not None:
            raise Throttled("graph", retry_after, "TooManyRequests")  # refused, so nothing minted
        tenant = self._tenant(tenant_id)
        app = tenant.app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        now = self.now()
        policy = tenant.policy.for_app_created(app.created)  # a restriction may spare apps created before a date
        if not policy.additions_allowed:
            raise SecretsForbiddenByPolicy("CredentialTypeNotAllowedAsPerAppPolicy", tenantId=tenant_id)
        if policy.max_lifetime_days is not None and end - now > timedelta(days=policy.max_lifetime_days):
            raise SecretLifetimeExceedsPolicy("CredentialInvalidLifetimeAsPerAppPolicy", tenantId=tenant_id)
        key_id = self._id("password")
        text = f"Fk{len(self.minted):02d}~{uuid.uuid5(NAMESPACE, 'text/' + key_id).hex}"
        info = PasswordInfo(key_id=key_id, display_name=display_name, hint=text[:3], start=now, end=end)
        password = app.passwords[key_id] = FakePassword(info, text)
        self.minted.append(password)
        self._leave("add_password", **call)
        return NewPassword(info, Secret(text))

    async def remove_password(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        call = {"tenant_id": tenant_id, "app_object_id": app_object_id, "key_id": key_id}
        self._enter("remove_password", **call)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        # A lagging app answers 404, which the adapter takes for "already gone" (and nothing is removed).
        lagging = app is not None and self._lagging("application", app_object_id)
        removed = app is not None and not lagging and app.passwords.pop(key_id, None) is not None
        self._leave("remove_password", **call)
        return removed

    async def add_key(self, tenant_id: str, app_object_id: str, key: NewKey) -> KeyInfo:
        call = {"tenant_id": tenant_id, "app_object_id": app_object_id, "key_id": key.key_id}
        self._enter("add_key", **call)
        tenant = self._tenant(tenant_id)
        app = tenant.app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):  # the adapter reads the keys first
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        existing = app.keys.get(key.key_id)
        if existing is not None:
            self._leave("add_key", **call)
            return existing.info  # already there under this keyId: left as it is
        certificate = key.certificate
        policy = tenant.policy.for_app_created(app.created)
        lifetime = certificate.not_after - certificate.not_before
        if policy.certificate_max_lifetime_days is not None and lifetime > timedelta(
            days=policy.certificate_max_lifetime_days
        ):
            raise CertificatesRefusedByPolicy(
                "CredentialInvalidLifetimeAsPerAppPolicy", tenantId=tenant_id,
                upstreamCode="CredentialInvalidLifetimeAsPerAppPolicy",
            )  # fmt: skip
        info = KeyInfo(
            key_id=key.key_id,
            display_name=key.display_name,
            # Graph's customKeyIdentifier: the SHA-1 of the certificate, which it computes itself.
            thumbprint=hashlib.sha1(certificate.der).hexdigest().upper(),  # noqa: S324 - an identifier
            start=certificate.not_before,
            end=certificate.not_after,
        )
        added = app.keys[key.key_id] = FakeKey(info, certificate.der)
        self.keys_added.append(added)
        self._leave("add_key", **call)
        return info

    async def remove_key(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        call = {"tenant_id": tenant_id, "app_object_id": app_object_id, "key_id": key_id}
        self._enter("remove_key", **call)
        app = self._tenant(tenant_id).app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):  # the adapter reads the keys first
            raise NotReplicatedYet("the app registration", "Request_ResourceNotFound")
        removed = app.keys.pop(key_id, None) is not None
        self._leave("remove_key", **call)
        return removed

    async def delete_application(self, tenant_id: str, app_object_id: str) -> bool:
        self._enter("delete_application", tenant_id=tenant_id, app_object_id=app_object_id)
        tenant = self._tenant(tenant_id)
        app = tenant.app_by_object_id(app_object_id)
        if app is None or self._lagging("application", app_object_id):
            return False  # Graph's 404, which the adapter reads as "already gone", even for an app still replicating
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

    async def add_key(self, tenant_id: str, app_object_id: str, key: NewKey) -> KeyInfo:
        await asyncio.sleep(0)
        return await super().add_key(tenant_id, app_object_id, key)

    async def remove_key(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        await asyncio.sleep(0)
        return await super().remove_key(tenant_id, app_object_id, key_id)
