"""What the stand-in remembers: tenants with their directories, the vault, and replication visibility.

Directory objects are kept in Graph's own JSON shape (what a GET returns), so the Graph
routes serialize them as they are; what Graph never returns (secret hashes, owners,
replication timestamps) lives beside them. All mutation happens on the one event-loop
thread, so every handler's read-modify-write is atomic without locks.
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import os
import tempfile
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .clock import DirectoryClock, monotonic_ms

# Microsoft Graph's first-party application id: the Graph permissions reference reads every Graph permission from
# GET /servicePrincipals(appId='00000003-0000-0000-c000-000000000000') (https://learn.microsoft.com/graph/permissions-reference).
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"

JsonObject = dict[str, Any]


def new_guid() -> str:
    return str(uuid.uuid4())


def hash_secret(secret_text: str) -> str:
    return hashlib.sha256(secret_text.encode()).hexdigest()


def secret_matches(secret_text: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret_text), stored_hash)


@dataclass
class Tenant:
    id: str
    display_name: str
    default_domain: str
    applications: dict[str, JsonObject] = field(default_factory=dict)
    service_principals: dict[str, JsonObject] = field(default_factory=dict)
    # appRoleAssignment id -> Graph JSON; both `appRoleAssignedTo` (by resource) and
    # `appRoleAssignments` (by principal) are views over this one table, as in Entra.
    assignments: dict[str, JsonObject] = field(default_factory=dict)
    deleted_applications: dict[str, JsonObject] = field(default_factory=dict)
    owners: dict[str, list[str]] = field(default_factory=dict)
    # keyId -> sha256 of the secret text; Entra never returns a secret after addPassword.
    password_hashes: dict[str, str] = field(default_factory=dict)
    federated_credentials: dict[str, dict[str, JsonObject]] = field(default_factory=dict)
    app_management_policy: JsonObject = field(default_factory=dict)
    # keyCredential keyId -> base64 DER of the certificate. Graph returns `key` only on a single-object
    # $select=keyCredentials, so the application's JSON keeps `key: null` and the bytes live here.
    certificate_keys: dict[str, str] = field(default_factory=dict)
    # application object id -> the appManagementPolicy assigned to it (overrides the tenant default).
    app_policies: dict[str, JsonObject] = field(default_factory=dict)
    # service principal object id -> template ids of the Entra roles a customer's admin assigned it.
    directory_roles: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Not a dataclass field, so snapshots never carry it; built from the tables on first use.
        self._index: DirectoryIndex | None = None

    @property
    def index(self) -> DirectoryIndex:
        if self._index is None:
            self._index = DirectoryIndex(self)
        return self._index

    # --- changes go through these, so the lookups below stay O(1) at any directory size ---
    def add_application(self, app: JsonObject) -> None:
        self.applications[app["id"]] = app
        self.reindex_application(app)

    def reindex_application(self, app: JsonObject) -> None:
        """After a change to an indexed property (uniqueName is set once, from null)."""
        if self._index is not None:
            self._index.add_application(app)

    def remove_application(self, object_id: str) -> JsonObject:
        app = self.applications.pop(object_id)
        if self._index is not None:
            self._index.remove_application(app)
        return app

    def add_service_principal(self, sp: JsonObject) -> None:
        self.service_principals[sp["id"]] = sp
        if self._index is not None:
            self._index.add_service_principal(sp)

    def reindex_service_principal(self, sp: JsonObject) -> None:
        """After a change to servicePrincipalNames (a PATCH may set them)."""
        if self._index is not None:
            self._index.remove_service_principal(sp)
            self._index.add_service_principal(sp)

    def remove_service_principal(self, object_id: str) -> JsonObject:
        sp = self.service_principals.pop(object_id)
        if self._index is not None:
            self._index.remove_service_principal(sp)
        return sp

    def add_assignment(self, assignment: JsonObject) -> None:
        self.assignments[assignment["id"]] = assignment
        if self._index is not None:
            self._index.by_principal.setdefault(assignment["principalId"], set()).add(assignment["id"])

    def remove_assignment(self, assignment_id: str) -> JsonObject:
        assignment = self.assignments.pop(assignment_id)
        if self._index is not None:
            self._index.by_principal.get(assignment["principalId"], set()).discard(assignment_id)
        return assignment

    # --- lookups that ignore replication (the write replica's view) ---
    def application_by_app_id(self, app_id: str) -> JsonObject | None:
        found = self.applications.get(self.index.app_by_app_id.get(app_id, ""))
        return found if found is not None and found["appId"] == app_id else None

    def application_by_unique_name(self, unique_name: str) -> JsonObject | None:
        wanted = unique_name.lower()
        found = self.applications.get(self.index.app_by_unique_name.get(wanted, ""))
        return found if found is not None and (found.get("uniqueName") or "").lower() == wanted else None

    def service_principal_by_app_id(self, app_id: str) -> JsonObject | None:
        found = self.service_principals.get(self.index.sp_by_app_id.get(app_id, ""))
        return found if found is not None and found["appId"] == app_id else None

    def service_principal_for_resource(self, resource: str) -> JsonObject | None:
        """The resource SP a token request names: by appId or by one of its servicePrincipalNames."""
        holders = self.index.sp_by_name.get(_resource_key(resource))
        return self.service_principals.get(holders[0]) if holders else None

    def assignments_of(self, principal_id: str) -> list[JsonObject]:
        """The app role assignments granted to a principal (appRoleAssignments), in no set order."""
        ids = self.index.by_principal.get(principal_id, ())
        return [a for aid in ids if (a := self.assignments.get(aid)) is not None and a["principalId"] == principal_id]

    def find_object(self, object_id: str) -> JsonObject | None:
        return self.applications.get(object_id) or self.service_principals.get(object_id)


def _resource_key(name: str) -> str:
    return name.rstrip("/").lower()


class DirectoryIndex:
    """Lookup tables over one tenant's directory: by appId, uniqueName, resource name, principal.

    A scale run seeds tens of thousands of apps into one tenant, and every Graph read by
    uniqueName and every token request (appId, resource, granted roles) used to scan them all.
    Entries are added and removed by the Tenant's change methods; a lookup still checks the
    object it finds, so a stale entry can only ever read as "not found"."""

    def __init__(self, tenant: Tenant) -> None:
        self.app_by_app_id: dict[str, str] = {}
        self.app_by_unique_name: dict[str, str] = {}
        self.sp_by_app_id: dict[str, str] = {}
        # name -> SP ids holding it, oldest first (the scan this replaces found the first match)
        self.sp_by_name: dict[str, list[str]] = {}
        self.names_of_sp: dict[str, set[str]] = {}  # what each SP is indexed under, to forget it in O(1)
        self.by_principal: dict[str, set[str]] = {}
        for app in tenant.applications.values():
            self.add_application(app)
        for sp in tenant.service_principals.values():
            self.add_service_principal(sp)
        for assignment_id, assignment in tenant.assignments.items():
            self.by_principal.setdefault(assignment["principalId"], set()).add(assignment_id)

    def add_application(self, app: JsonObject) -> None:
        self.app_by_app_id[app["appId"]] = app["id"]
        if app.get("uniqueName"):
            self.app_by_unique_name[app["uniqueName"].lower()] = app["id"]

    def remove_application(self, app: JsonObject) -> None:
        _discard(self.app_by_app_id, app["appId"], app["id"])
        if app.get("uniqueName"):
            _discard(self.app_by_unique_name, app["uniqueName"].lower(), app["id"])

    def add_service_principal(self, sp: JsonObject) -> None:
        self.sp_by_app_id[sp["appId"]] = sp["id"]
        names = {_resource_key(n) for n in (sp["appId"], *sp.get("servicePrincipalNames", []))}
        for name in names - self.names_of_sp.get(sp["id"], set()):
            self.sp_by_name.setdefault(name, []).append(sp["id"])
        self.names_of_sp.setdefault(sp["id"], set()).update(names)

    def remove_service_principal(self, sp: JsonObject) -> None:
        """Forget the SP under every name it was indexed under, including names a PATCH has since replaced."""
        _discard(self.sp_by_app_id, sp["appId"], sp["id"])
        for name in self.names_of_sp.pop(sp["id"], set()):
            holders = self.sp_by_name.get(name, [])
            if sp["id"] in holders:
                holders.remove(sp["id"])
            if not holders:
                self.sp_by_name.pop(name, None)


def _discard(table: dict[str, str], key: str, object_id: str) -> None:
    if table.get(key) == object_id:
        del table[key]


@dataclass
class SecretVersion:
    name: str
    version: str
    value: str
    content_type: str | None
    tags: dict[str, str] | None
    enabled: bool
    not_before: int | None
    expires: int | None
    created: int
    updated: int
    # True for the secret backing a certificate version (keyvault_certificates.py): Key Vault answers
    # `managed: true` and the key's `kid` with it.
    managed: bool = False


@dataclass
class SecretRecord:
    """A secret with all its versions, in creation order; the last is the current one."""

    name: str
    versions: list[SecretVersion] = field(default_factory=list)
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        return next((v for v in self.versions if v.version == version.lower()), None)


@dataclass
class CertificateVersion:
    """One issued or imported X.509 certificate; its key and its backing secret carry the same version."""

    name: str
    version: str
    cer: str  # the certificate, base64 DER
    key_pem: str  # its private key, PKCS#8 PEM (the certificate's key, /keys/{name}/{version})
    tags: dict[str, str] | None
    enabled: bool
    not_before: int
    expires: int
    created: int
    updated: int
    from_create: bool = False  # issued through /create: the bundle names its pending operation


@dataclass
class CertificateRecord:
    """A certificate's versions (the last is current), its policy and its latest creation operation."""

    name: str
    policy: JsonObject  # as Key Vault returns it (with its attributes), less the id
    versions: list[CertificateVersion] = field(default_factory=list)
    operation: JsonObject | None = None  # the last create: request_id, csr, status, issuer
    pending: CertificateVersion | None = None  # the version a create in progress will add
    secret: SecretRecord | None = None  # the backing secret, held here while the certificate is deleted
    deleted_date: int | None = None
    scheduled_purge_date: int | None = None

    @property
    def latest(self) -> CertificateVersion:
        return self.versions[-1]

    def version(self, version: str) -> CertificateVersion | None:
        return next((v for v in self.versions if v.version == version.lower()), None)


@dataclass
class Vault:
    tenant_id: str
    # Azure RBAC on the vault: principal object id -> built-in role name.
    role_assignments: dict[str, str | list[str]] = field(default_factory=dict)
    soft_delete_retention_days: int = 90
    purge_protection: bool = False
    secrets: dict[str, SecretRecord] = field(default_factory=dict)
    deleted_secrets: dict[str, SecretRecord] = field(default_factory=dict)
    certificates: dict[str, CertificateRecord] = field(default_factory=dict)
    deleted_certificates: dict[str, CertificateRecord] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The live names in listing order, for paging by name (not a field: never in a snapshot).
        self._sorted: list[str] | None = None

    @property
    def recovery_level(self) -> str:
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"

    def add_record(self, record: SecretRecord) -> None:
        """A name comes into the listing (a first version, or a recovery)."""
        key = record.name.lower()
        if key not in self.secrets and self._sorted is not None:
            bisect.insort(self._sorted, key)
        self.secrets[key] = record

    def add_records(self, records: list[SecretRecord]) -> None:
        """Many new names at once (bulk seeding): one sort on the next listing instead of an insert each."""
        for record in records:
            self.secrets[record.name.lower()] = record
        self._sorted = None

    def remove_record(self, name: str) -> SecretRecord:
        key = name.lower()
        record = self.secrets.pop(key)
        if self._sorted is not None:
            at = bisect.bisect_left(self._sorted, key)
            if at < len(self._sorted) and self._sorted[at] == key:
                del self._sorted[at]
        return record

    def names_from(self, marker: str | None, count: int) -> tuple[list[str], str | None]:
        """Up to `count` live names from `marker` on (inclusive), and the name the next page starts at.

        Paging by name, as Key Vault's own NextMarker does, costs O(log n) a page at any vault size
        and neither skips nor repeats a secret when others are added or deleted mid-listing."""
        if self._sorted is None or len(self._sorted) != len(self.secrets):
            self._sorted = sorted(self.secrets)
        start = bisect.bisect_left(self._sorted, marker) if marker else 0
        names = self._sorted[start : start + count + 1]
        return names[:count], (names[count] if len(names) > count else None)


class Replication:
    """Entra's eventual consistency: an object written now is invisible to reads for a while.

    Each kind of object (application, servicePrincipal, password, keyCredential, appRoleAssignment, and Key
    Vault's secretDeletion and secretRecovery, which finish after their call returns) has its
    own lag, set by tests or benchmarks. Visibility is stamped at creation, so a later change
    of the lag does not rewrite history.
    """

    # Key Vault's soft delete and recover also complete after the call returns (keyvault.py), and so does a
    # certificate's creation (keyvault_certificates.py).
    KINDS = (
        "application",
        "servicePrincipal",
        "password",
        "keyCredential",
        "appRoleAssignment",
        "secretDeletion",
        "secretRecovery",
        "certificateCreation",
        "certificateDeletion",
        "certificateRecovery",
        # Azure RBAC: a role assignment takes effect for authorization only after this lag (arm_rbac.py).
        "roleAssignment",
    )

    def __init__(self) -> None:
        self.lag_ms: dict[str, float] = dict.fromkeys(self.KINDS, 0.0)
        self._visible_at: dict[str, float] = {}

    def configure(self, lag_ms: dict[str, float]) -> None:
        for kind, value in lag_ms.items():
            if kind not in self.KINDS:
                raise ValueError(f"unknown replication kind {kind!r}; known: {', '.join(self.KINDS)}")
            if value < 0:
                raise ValueError("replication lag cannot be negative")
            self.lag_ms[kind] = float(value)

    def created(self, kind: str, object_id: str) -> None:
        lag = self.lag_ms[kind]
        if lag > 0:
            self._visible_at[object_id] = monotonic_ms() + lag

    def visible(self, object_id: str) -> bool:
        due = self._visible_at.get(object_id)
        if due is None:
            return True
        if monotonic_ms() >= due:
            del self._visible_at[object_id]
            return True
        return False

    def remaining_ms(self, object_id: str) -> float:
        due = self._visible_at.get(object_id)
        return max(0.0, due - monotonic_ms()) if due is not None else 0.0


@dataclass
class Arm:
    """Azure Resource Manager's share of the world (arm.py): subscriptions, workspaces, role assignments.

    Keys are lower-cased resource ids, since ARM compares resource ids case-insensitively; the values
    keep the casing they were created with, as ARM returns it."""

    subscriptions: dict[str, str] = field(default_factory=dict)  # subscription id -> tenant id
    workspaces: dict[str, JsonObject] = field(default_factory=dict)
    # Role assignments in ARM's own JSON shape (id, name, type, properties), by lower-cased id.
    role_assignments: dict[str, JsonObject] = field(default_factory=dict)

    def workspace_by_customer_id(self, customer_id: str) -> JsonObject | None:
        wanted = customer_id.lower()
        return next((w for w in self.workspaces.values() if w["customerId"] == wanted), None)


@dataclass
class Topic:
    """An Event Grid custom topic: the events it accepted, in order, and who may publish (the object ids holding
    EventGrid Data Sender on it; None: the default managed identity)."""

    received: list[JsonObject] = field(default_factory=list)
    senders: set[str] | None = None


class World:
    """Everything the stand-in serves, plus its clocks; one per process."""

    def __init__(self, home_tenant_id: str, vault: Vault) -> None:
        self.home_tenant_id = home_tenant_id
        self.tenants: dict[str, Tenant] = {}
        self.vault = vault
        self.clock = DirectoryClock()
        self.replication = Replication()
        self.arm = Arm()
        # Managed identities this host can mint tokens for: client id -> (tenant id, SP object id).
        self.managed_identities: dict[str, tuple[str, str]] = {}
        self.default_managed_identity: str | None = None
        # The Event Grid topic the product publishes to (emulator/event_grid.py): kept in memory only.
        self.topic = Topic()
        self.dirty = False

    def tenant(self, tenant_ref: str) -> Tenant | None:
        """Find a tenant by id or by its default domain, as Entra's authority paths allow."""
        ref = tenant_ref.lower()
        if ref in self.tenants:
            return self.tenants[ref]
        return next((t for t in self.tenants.values() if t.default_domain.lower() == ref), None)

    def touch(self) -> None:
        self.dirty = True

    # --- persistence (optional, to a data dir) ---
    def snapshot(self) -> JsonObject:
        return {
            "home_tenant_id": self.home_tenant_id,
            "clock_offset_seconds": self.clock.offset.total_seconds(),
            "tenants": {tid: asdict(t) for tid, t in self.tenants.items()},
            "vault": asdict(self.vault),
            "managed_identities": {k: list(v) for k, v in self.managed_identities.items()},
            "default_managed_identity": self.default_managed_identity,
            "arm": asdict(self.arm),
        }

    @classmethod
    def restore(cls, data: JsonObject) -> World:
        vault_data = dict(data["vault"])
        vault = Vault(
            tenant_id=vault_data["tenant_id"],
            role_assignments=vault_data["role_assignments"],
            soft_delete_retention_days=vault_data["soft_delete_retention_days"],
            purge_protection=vault_data["purge_protection"],
            secrets={k: _record_from(v) for k, v in vault_data["secrets"].items()},
            deleted_secrets={k: _record_from(v) for k, v in vault_data["deleted_secrets"].items()},
            certificates={k: _certificate_from(v) for k, v in vault_data.get("certificates", {}).items()},
            deleted_certificates={
                k: _certificate_from(v) for k, v in vault_data.get("deleted_certificates", {}).items()
            },
        )
        world = cls(data["home_tenant_id"], vault)
        from datetime import timedelta

        world.clock.offset = timedelta(seconds=data.get("clock_offset_seconds", 0))
        for tid, tenant_data in data["tenants"].items():
            world.tenants[tid] = Tenant(**tenant_data)
        world.managed_identities = {k: (v[0], v[1]) for k, v in data["managed_identities"].items()}
        world.default_managed_identity = data.get("default_managed_identity")
        world.arm = Arm(**data.get("arm", {}))  # state files from before ARM carry none
        return world

    def save(self, path: Path) -> None:
        """Write atomically, so a crash mid-save never leaves a torn state file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".state-", suffix=".json")
        with os.fdopen(fd, "w") as handle:
            json.dump(self.snapshot(), handle)
        os.chmod(tmp, 0o600)  # the state holds secret values, as a real vault would
        os.replace(tmp, path)
        self.dirty = False


def _record_from(data: JsonObject) -> SecretRecord:
    return SecretRecord(
        name=data["name"],
        versions=[SecretVersion(**v) for v in data["versions"]],
        deleted_date=data.get("deleted_date"),
        scheduled_purge_date=data.get("scheduled_purge_date"),
    )


def _certificate_from(data: JsonObject) -> CertificateRecord:
    pending, secret = data.get("pending"), data.get("secret")
    return CertificateRecord(
        name=data["name"],
        policy=data["policy"],
        versions=[CertificateVersion(**v) for v in data["versions"]],
        operation=data.get("operation"),
        pending=CertificateVersion(**pending) if pending else None,
        secret=_record_from(secret) if secret else None,
        deleted_date=data.get("deleted_date"),
        scheduled_purge_date=data.get("scheduled_purge_date"),
    )
