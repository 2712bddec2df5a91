"""The narrow interfaces use cases are written against; adapters implement them, tests fake them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from shared.domain.events import Event
from shared.domain.model import (
    AppRegistration,
    Assignment,
    CertificateKey,
    ClientCredential,
    FederatedTrust,
    HeldAssignment,
    KeyInfo,
    Listing,
    NewKey,
    NewPassword,
    PasswordPolicy,
    PublicCertificate,
    RecordPage,
    ResourceApi,
    RoleRef,
    SecretSummary,
    StoredCertificate,
    StoredSecret,
    Workspace,
)
from shared.domain.sweep_state import Checkpoint, DueEntry, WorkItem


class NotReplicatedYet(Exception):
    """Entra answered as if an object we just wrote did not exist yet (eventual consistency)."""

    def __init__(self, what: str, code: str | None = None) -> None:
        super().__init__(f"{what} is not replicated yet ({code or 'no code'})")
        self.what = what
        self.code = code


class Throttled(Exception):
    """The service asked us to slow down and the SDK's own retries did not get through."""

    def __init__(self, service: str, retry_after: float | None, code: str | None = None) -> None:
        super().__init__(f"{service} is throttling (retry after {retry_after} s)")
        self.service = service
        self.retry_after = retry_after
        self.code = code


class NameHeldByDeletedApplication(Exception):
    """The uniqueName belongs to an application in deleted items, which keeps it for 30 days."""

    def __init__(self, deleted_object_id: str) -> None:
        super().__init__(f"the unique name is held by the deleted application {deleted_object_id}")
        self.deleted_object_id = deleted_object_id


class PasswordOutcomeUnknown(Exception):
    """addPassword may or may not have been carried out (a 5xx or a lost connection)."""


@dataclass(frozen=True)
class ApplicationSpec:
    """What the app registration should look like; applied on create and on every converge."""

    display_name: str
    tags: tuple[str, ...]
    notes: str
    required_roles: tuple[tuple[str, tuple[str, ...]], ...]  # (resource appId, app role ids)
    # Single tenant: the registration lives in, and serves, one customer tenant.
    sign_in_audience: str = "AzureADMyOrg"

    def matches(self, app: AppRegistration) -> bool:
        """True when the app already looks like this spec, so converging it would change nothing."""
        wanted_roles = {RoleRef(resource, role) for resource, roles in self.required_roles for role in roles}
        return (
            app.display_name == self.display_name
            and set(app.tags) == set(self.tags)
            and (app.notes or "") == self.notes
            and app.sign_in_audience == self.sign_in_audience
            and app.required_roles == wanted_roles
        )


@dataclass(frozen=True)
class GrantResult:
    granted: tuple[str, ...]  # app role ids newly granted or found already granted
    pending: tuple[str, ...]  # app role ids Entra could not grant yet (replicating or throttled)
    retry_after: float | None = None  # the longest Retry-After a throttled grant asked for


class Directory(Protocol):
    """Entra ID as seen through Microsoft Graph in one tenant at a time."""

    async def resource_api(self, tenant_id: str, resource_app_id: str) -> ResourceApi | None: ...

    async def password_policy(self, tenant_id: str) -> PasswordPolicy: ...

    async def find_application(self, tenant_id: str, unique_name: str) -> AppRegistration | None: ...

    async def upsert_application(
        self, tenant_id: str, unique_name: str, spec: ApplicationSpec
    ) -> tuple[AppRegistration, bool]:
        """Create or converge by uniqueName; NameHeldByDeletedApplication when a deleted app holds the name."""
        ...

    async def update_application(self, tenant_id: str, app_object_id: str, spec: ApplicationSpec) -> None:
        """Converge an existing app (one proven this service's) to the spec."""
        ...

    async def application_owners(self, tenant_id: str, app_object_id: str) -> frozenset[str]: ...

    async def federated_credentials(self, tenant_id: str, app_object_id: str) -> tuple[str, ...]: ...

    async def federated_trusts(self, tenant_id: str, app_object_id: str) -> tuple[FederatedTrust, ...]:
        """The app's federated identity credentials in full (a connector app's, which this service keeps)."""
        ...

    async def add_federated_trust(self, tenant_id: str, app_object_id: str, trust: FederatedTrust) -> None: ...

    async def remove_federated_trust(self, tenant_id: str, app_object_id: str, trust_id: str) -> bool: ...

    async def caller_object_id(self, tenant_id: str) -> str:
        """This service's own object id in the tenant (what an app it created lists as its owner)."""
        ...

    async def find_service_principal(self, tenant_id: str, app_id: str) -> str | None: ...

    async def upsert_service_principal(
        self, tenant_id: str, app_id: str, *, app_is_new: bool = False
    ) -> tuple[str, bool]:
        """Create the service principal when missing, never change an existing one; app_is_new skips the read."""
        ...

    async def assignments(self, tenant_id: str, principal_id: str) -> list[Assignment]: ...

    async def grant(
        self, tenant_id: str, principal_id: str, roles: list[tuple[str, str]]
    ) -> GrantResult: ...  # roles: (resource SP object id, app role id)

    async def revoke(self, tenant_id: str, resource_object_id: str, assignment_id: str) -> bool:
        """Take back one app role assignment; False if it was already gone."""
        ...

    async def add_password(
        self, tenant_id: str, app_object_id: str, display_name: str, end: datetime
    ) -> NewPassword: ...

    async def remove_password(self, tenant_id: str, app_object_id: str, key_id: str) -> bool: ...

    async def add_key(self, tenant_id: str, app_object_id: str, key: NewKey) -> KeyInfo:
        """Put a certificate on the app (keeping its others); a certificate already there under this keyId is
        left as it is, so repeating the call is safe."""
        ...

    async def remove_key(self, tenant_id: str, app_object_id: str, key_id: str) -> bool:
        """Take one certificate off the app (keeping its others); False if it was not there."""
        ...

    async def delete_application(self, tenant_id: str, app_object_id: str) -> bool:
        """Soft-delete (into deleted items); False if it was already gone."""
        ...

    async def find_deleted_application(self, tenant_id: str, unique_name: str) -> str | None:
        """The object id of a soft-deleted app with this unique name, if any."""
        ...

    async def purge_deleted_application(self, tenant_id: str, app_object_id: str) -> bool:
        """Permanently delete from deleted items; False if it was not there."""
        ...


class TenantAccess(Protocol):
    """Whether, and how, this service reaches a tenant: the managed identity at home, a consented provisioner app
    in a customer's tenant."""

    async def ensure_reachable(self, tenant_id: str) -> None:
        """Raise ConsentRequired or TenantNotAllowed unless this service can manage apps in the tenant."""
        ...

    def ensure_allowed(self, tenant_id: str) -> None:
        """Raise TenantNotAllowed for a tenant this deployment may not manage, without asking Entra anything."""
        ...

    async def consent(self, tenant_id: str) -> tuple[bool, set[str]]:
        """(whether the provisioner app is consented in the tenant, its Graph roles there), from a real token."""
        ...

    def consent_url(self, tenant_id: str) -> str | None:
        """Where the tenant's admin consents to the provisioner app (None: no provisioner app configured)."""
        ...

    async def warm_up(self) -> None:
        """Fetch what reaching customer tenants needs first (the managed identity's token for the exchange)."""
        ...


class ConnectorTokens(Protocol):
    """Tokens a connector app gets in a customer tenant through the federated exchange (no stored credential)."""

    async def own_identity(self) -> tuple[str, str]:
        """(issuer, subject) of this service's own workload identity, as its tokens for the exchange name them."""
        ...

    async def roles(self, tenant_id: str, client_id: str, scope: str) -> set[str] | None:
        """The `roles` of the connector's token for `scope` in the tenant; None when the tenant has not consented
        (no service principal there); NotReplicatedYet while a fresh consent replicates."""
        ...


class CredentialChecker(Protocol):
    async def granted_roles(self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        """The `roles` of a token obtained with these credentials; NotReplicatedYet while Entra catches up."""
        ...

    async def directory_roles(
        self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str
    ) -> set[str]:
        """The template ids of the Entra roles the app holds: its token's `wids` claim (empty when absent)."""
        ...


class Vault(Protocol):
    async def read(self, name: str, with_value: bool = False) -> StoredSecret | None: ...

    async def write(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> StoredSecret: ...

    async def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None: ...

    async def stored_key_ids(self, name: str) -> set[str]:
        """The credential keyIds recorded on any version of a secret (what was ever stored)."""
        ...

    def reference(self, name: str) -> str: ...

    async def delete(self, name: str) -> bool:
        """Soft-delete a secret (recoverable for the vault's retention); False if there was none."""
        ...

    async def purge(self, name: str) -> bool:
        """Permanently delete a soft-deleted secret; False if there was none."""
        ...

    def client_secrets(self) -> AsyncIterator[SecretSummary]:
        """Every client secret (and vendor certificate record) this deployment manages (by tags), streamed page by
        page: what the sweep plans from."""
        ...

    # Certificates: Key Vault creates the key pair and keeps it; the backing secret of the same name holds
    # the PKCS#12 that `reference(name)` points downstream services at.
    async def create_certificate(
        self, name: str, subject: str, validity_months: int, tags: dict[str, str]
    ) -> StoredCertificate:
        """A new version of a self-signed certificate, its key exportable, created in Key Vault."""
        ...

    async def read_certificate(self, name: str, with_key: bool = False) -> StoredCertificate | None: ...

    async def import_certificate(self, name: str, key: CertificateKey, tags: dict[str, str]) -> StoredCertificate:
        """A new version holding a certificate and key Key Vault already created (rotation's promotion)."""
        ...

    async def update_certificate_tags(self, name: str, version: str, tags: dict[str, str]) -> None: ...

    async def delete_certificate(self, name: str) -> bool:
        """Soft-delete a certificate (its backing secret and key with it); False if there was none."""
        ...

    async def purge_certificate(self, name: str) -> bool: ...

    def client_certificates(self) -> AsyncIterator[SecretSummary]:
        """Every client certificate this deployment manages (by tags), streamed page by page."""
        ...

    async def record_page(self, listing: Listing, link: str | None) -> RecordPage:
        """One page of a listing (`link`: a previous page's `next_link`; None: the first), this deployment's records
        only. InvalidRequest for a link that is not this vault's own listing of that kind (links come back from
        callers as continuation tokens)."""
        ...


class Workspaces(Protocol):
    """Log Analytics workspaces in a customer's Azure subscription: read and role assignments through Azure Resource
    Manager as this service (its identity in that tenant: shared/adapters/identity.py), queries through the Log
    Analytics API as the registration's app (its new credential). Raise WorkspaceNotFound, WorkspaceAccessMissing,
    UpstreamError or UpstreamUnavailable."""

    async def workspace(self, tenant_id: str, resource_id: str) -> Workspace:
        """The workspace; WorkspaceNotFound (404), WorkspaceAccessMissing when this service may not read it."""
        ...

    async def may_assign_roles(self, tenant_id: str, resource_id: str) -> bool:
        """Whether this service holds `Microsoft.Authorization/roleAssignments/write` at the workspace (ARM's
        permissions list: a role's conditions are checked only when it assigns, so True is necessary, not enough)."""
        ...

    async def held_assignments(self, tenant_id: str, scope: str, principal_id: str) -> list[HeldAssignment]:
        """The principal's role assignments at or above `scope`, with their conditions (ARM's list for a scope)."""
        ...

    async def assign_role(
        self, tenant_id: str, scope: str, name: str, role_definition_id: str, principal_id: str
    ) -> str:
        """Assign the role (a GUID) to the service principal at `scope` under the assignment `name` (a GUID this
        service derives, so a retry finds its own); its full id. Idempotent: an identical assignment under
        another name counts as done. NotReplicatedYet while ARM does not know the principal yet;
        WorkspaceAccessMissing when refused (a missing role, or a condition the request does not meet)."""
        ...

    async def role_assigned(self, tenant_id: str, assignment_id: str) -> bool:
        """Whether the assignment (its full id) exists."""
        ...

    async def remove_role_assignment(self, tenant_id: str, assignment_id: str) -> bool:
        """Delete the assignment; False when it was not there."""
        ...

    async def query_allowed(
        self, tenant_id: str, customer_id: str, client_id: str, credential: ClientCredential
    ) -> bool:
        """Whether a real query through the Log Analytics API, signed in as the app with `credential`, is answered:
        False while the workspace refuses it (its role not yet effective: Azure RBAC takes minutes to propagate)."""
        ...


class CertificateReader(Protocol):
    def public_certificate(self, text: str) -> PublicCertificate:
        """A public X.509 certificate from PEM or base64 DER; InvalidRequest (field `certificate`) for anything
        else, PrivateKeySupplied for text that holds a private key."""
        ...


class Locks(Protocol):
    """One writer per registration, across every instance of the app."""

    def hold(self, key: str, wait_seconds: float) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold the lock for `key`, waiting up to `wait_seconds`; RegistrationBusy if it stays taken."""
        ...


@dataclass(frozen=True)
class OutboxItem:
    """An event kept for later delivery, with what it takes to remove it once delivered."""

    event: Event
    receipt: tuple[str, str]  # the queue message's id and pop receipt
    attempts: int  # how many times it has been taken


class EventPublisher(Protocol):
    async def publish(self, events: Sequence[Event]) -> None:
        """Publish in one request. UpstreamUnavailable when the topic may accept them later (throttled, 5xx, no
        answer), UpstreamError when it refused them for good."""
        ...


class EventOutbox(Protocol):
    """Where events wait while the topic is unavailable (a queue in the Functions storage account)."""

    async def put(self, events: Sequence[Event]) -> None: ...

    async def take(self, limit: int) -> list[OutboxItem]:
        """Up to `limit` waiting events, each hidden from other takers for a while (then taken again unless done)."""
        ...

    async def done(self, items: Sequence[OutboxItem]) -> None: ...


class CheckpointMoved(Exception):
    """The sweep's checkpoint changed since it was read: another invocation holds the pass, this one stops."""


@dataclass(frozen=True)
class PoisonedItem:
    """A work item the rotation worker failed on every delivery, as the Functions host left it in the poison queue."""

    item: WorkItem | None  # None: the message was not a work item
    receipt: tuple[str, str]  # the message's id and pop receipt


class SweepStore(Protocol):
    """The bounded sweep's durable state in the Functions storage account: its checkpoint (compare-and-set), the due
    index (entries in time order), the work queue the rotation worker is triggered by, and that queue's poison queue.
    Raise UpstreamUnavailable or UpstreamError."""

    async def checkpoint(self) -> tuple[Checkpoint, str | None]:
        """The saved checkpoint and its ETag; a fresh checkpoint and None when none was ever saved."""
        ...

    async def save_checkpoint(self, checkpoint: Checkpoint, etag: str | None) -> str:
        """Save if it is still the one read as `etag` (None: if there is none yet); the new ETag. CheckpointMoved
        otherwise."""
        ...

    async def schedule(self, entries: Sequence[DueEntry]) -> None:
        """Add index entries (adding one that exists changes nothing)."""
        ...

    def due(self, until: datetime) -> AsyncIterator[DueEntry]:
        """The index's entries at or before `until`, earliest first, streamed."""
        ...

    async def unschedule(self, entries: Sequence[DueEntry]) -> None:
        """Remove index entries (one already gone is no error)."""
        ...

    async def enqueue(self, items: Sequence[tuple[WorkItem, float]]) -> None:
        """Queue work items for the rotation worker, each visible after its delay in seconds."""
        ...

    async def poisoned(self, limit: int) -> list[PoisonedItem]:
        """Up to `limit` messages of the work queue's poison queue (hidden a while, not removed)."""
        ...

    async def forget_poisoned(self, items: Sequence[PoisonedItem]) -> None: ...
