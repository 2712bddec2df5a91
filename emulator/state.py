"""What the stand-in remembers: tenants with their directories, the vault, and replication visibility.

Directory objects are kept in Graph's own JSON shape (what a GET returns), so the Graph
routes serialize them as they are; what Graph never returns (secret hashes, owners,
replication timestamps) lives beside them. All mutation happens on the one event-loop
thread, so every handler's read-modify-write is atomic without locks.
"""

from __future__ import annotations

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

# Microsoft Graph's first-party application id (azure-facts.md, "Well-known application ids").
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

    # --- lookups that ignore replication (the write replica's view) ---
    def application_by_app_id(self, app_id: str) -> JsonObject | None:
        return next((a for a in self.applications.values() if a["appId"] == app_id), None)

    def application_by_unique_name(self, unique_name: str) -> JsonObject | None:
        wanted = unique_name.lower()
        return next(
            (a for a in self.applications.values() if (a.get("uniqueName") or "").lower() == wanted),
            None,
        )

    def service_principal_by_app_id(self, app_id: str) -> JsonObject | None:
        return next((s for s in self.service_principals.values() if s["appId"] == app_id), None)

    def service_principal_for_resource(self, resource: str) -> JsonObject | None:
        """The resource SP a token request names: by appId or by one of its servicePrincipalNames."""
        wanted = resource.rstrip("/").lower()
        for sp in self.service_principals.values():
            if sp["appId"].lower() == wanted:
                return sp
            if any(n.rstrip("/").lower() == wanted for n in sp.get("servicePrincipalNames", [])):
                return sp
        return None

    def find_object(self, object_id: str) -> JsonObject | None:
        return self.applications.get(object_id) or self.service_principals.get(object_id)


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
class Vault:
    tenant_id: str
    # Azure RBAC on the vault: principal object id -> built-in role name.
    role_assignments: dict[str, str] = field(default_factory=dict)
    soft_delete_retention_days: int = 90
    purge_protection: bool = False
    secrets: dict[str, SecretRecord] = field(default_factory=dict)
    deleted_secrets: dict[str, SecretRecord] = field(default_factory=dict)

    @property
    def recovery_level(self) -> str:
        return "Recoverable" if self.purge_protection else "Recoverable+Purgeable"


class Replication:
    """Entra's eventual consistency: an object written now is invisible to reads for a while.

    Each kind of object (application, servicePrincipal, password, appRoleAssignment) has its
    own lag, set by tests or benchmarks. Visibility is stamped at creation, so a later change
    of the lag does not rewrite history.
    """

    KINDS = ("application", "servicePrincipal", "password", "appRoleAssignment")

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


class World:
    """Everything the stand-in serves, plus its clocks; one per process."""

    def __init__(self, home_tenant_id: str, vault: Vault) -> None:
        self.home_tenant_id = home_tenant_id
        self.tenants: dict[str, Tenant] = {}
        self.vault = vault
        self.clock = DirectoryClock()
        self.replication = Replication()
        # Managed identities this host can mint tokens for: client id -> (tenant id, SP object id).
        self.managed_identities: dict[str, tuple[str, str]] = {}
        self.default_managed_identity: str | None = None
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
        )
        world = cls(data["home_tenant_id"], vault)
        from datetime import timedelta

        world.clock.offset = timedelta(seconds=data.get("clock_offset_seconds", 0))
        for tid, tenant_data in data["tenants"].items():
            world.tenants[tid] = Tenant(**tenant_data)
        world.managed_identities = {k: (v[0], v[1]) for k, v in data["managed_identities"].items()}
        world.default_managed_identity = data.get("default_managed_identity")
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
