"""The composition root: pure wiring. Builds settings, catalog, adapters and use cases, once per process.

Every adapter, and so every Microsoft SDK, is imported here and nowhere an entry point reaches at import:
shared/bootstrap/__init__.py imports this module on the first `services()`, which the `warmup` trigger runs
before a scaled-out instance takes traffic (and otherwise the first invocation). Every use case gets its ports
here and nowhere else; tests swap in fakes or the stand-in with `override`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from shared.adapters.event_grid import EventGridPublisher
from shared.adapters.graph import GraphDirectory
from shared.adapters.identity import HomeApps, Identity
from shared.adapters.keyvault import KeyVault
from shared.adapters.locks import BlobLeaseLocks, ProcessLocks
from shared.adapters.outbox import QueueOutbox
from shared.adapters.sweep_storage import StorageSweepStore
from shared.adapters.telemetry import start_audit_export
from shared.adapters.token_check import TokenRoleChecker
from shared.adapters.workspaces import ArmWorkspaces
from shared.adapters.x509 import X509Reader
from shared.bootstrap import Services
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.ports import Locks, SweepStore, Vault
from shared.domain.retry import RealClock
from shared.settings import Settings, load_settings
from shared.usecases.certificates import Certificates
from shared.usecases.connector import Connectors
from shared.usecases.credentials import Credentials
from shared.usecases.due_index import IndexingVault
from shared.usecases.events import EventDelivery
from shared.usecases.fleet import Fleet
from shared.usecases.offboarding import Offboarding
from shared.usecases.onboarding import Onboarding
from shared.usecases.rotation import Rotation
from shared.usecases.status import RegistrationStatus
from shared.usecases.sweep import Sweep
from shared.usecases.sweep_pass import SweepPasses
from shared.usecases.tenant_access import TenantConsent
from shared.usecases.warm_up import WarmUp
from shared.usecases.workspace_access import WorkspaceAccess

logger = logging.getLogger(__name__)


def compose(
    settings: Settings | None = None,
    now: Callable[[], datetime] | None = None,
    catalog: Catalog | None = None,
    sweep_store: SweepStore | None = None,
) -> Services:
    """`now`, `catalog` and `sweep_store` exist for tests and benchmarks (a stand-in's moved clock, a large synthetic
    catalog, an in-memory sweep store that counts its calls)."""
    settings = settings or load_settings()
    start_audit_export()  # configured at process start; its pipeline and SDKs are loaded now, before a request
    catalog = catalog or load_catalog(cloud=settings.cloud.name)
    now = now or (lambda: datetime.now(UTC))
    identity = Identity(settings)
    directory = GraphDirectory(settings, identity)
    key_vault = KeyVault(settings, identity)
    store_adapter = _sweep_store(settings, identity) if sweep_store is None else None
    sweep_store = sweep_store or store_adapter
    # Every change to a credential record files it in the due index first (shared/usecases/due_index.py).
    vault: Vault = IndexingVault(key_vault, sweep_store, settings, now) if sweep_store is not None else key_vault
    locks = _locks(settings, identity)
    clock = RealClock()
    checker = TokenRoleChecker(settings)
    credentials = Credentials(settings, directory, vault, checker, clock, now)
    certificates = Certificates(settings, directory, vault, clock, now)
    # Connector apps are this service's own, in its home tenant, whatever ALLOW_HOME_TENANT says of callers'.
    connector_directory = GraphDirectory(settings, HomeApps(identity, settings))
    connectors = Connectors(settings, catalog, connector_directory, vault, identity, clock, now, locks)
    rotation = Rotation(
        settings, catalog, directory, vault, credentials, locks, clock, now, access=identity, certificates=certificates
    )
    status = RegistrationStatus(
        settings.registry, catalog, directory, vault, now, access=identity,
        rotation_window_days=settings.rotation_window_days,
    )  # fmt: skip
    status.connectors = connectors
    workspaces = ArmWorkspaces(settings, identity)
    # The Sentinel connection's workspace: reached through ARM as this service, queried as the app.
    workspace_access = WorkspaceAccess(settings, vault, workspaces, clock, now, directory.caller_object_id)
    status.workspace_access = workspace_access
    publisher = (
        EventGridPublisher(settings, identity.vault_credential()) if settings.event_grid_topic_endpoint else None
    )
    outbox = _outbox(settings, identity) if publisher is not None else None
    events = EventDelivery(publisher, outbox, f"/tenant-onboarding/{settings.name_prefix}", now)
    logger.info("services built: vault %s, %d integrations in the catalog", settings.key_vault_url, len(catalog))
    return Services(
        settings,
        catalog,
        onboarding=Onboarding(
            settings,
            catalog,
            directory,
            vault,
            credentials,
            status,
            locks,
            clock,
            now,
            access=identity,
            certificates=certificates,
            reader=X509Reader(),
            connectors=connectors,
            workspace_access=workspace_access,
        ),
        status=status,
        rotation=rotation,
        sweep=Sweep(settings, rotation, vault, clock, now),
        fleet=Fleet(settings, catalog, vault, now),
        offboarding=Offboarding(
            settings, catalog, directory, vault, locks, access=identity, workspace_access=workspace_access
        ),
        tenant_consent=TenantConsent(settings, identity),
        warm_up=WarmUp(settings, directory, vault, locks, identity),
        identity=identity,
        directory=directory,
        connector_directory=connector_directory,
        vault=key_vault,
        locks=locks,
        checker=checker,
        workspaces=workspaces,
        event_publisher=publisher,
        outbox=outbox,
        events=events,
        sweep_passes=SweepPasses(settings, catalog, vault, sweep_store, clock, now)
        if sweep_store is not None
        else None,
        sweep_store=store_adapter,
    )


def _locks(settings: Settings, identity: Identity) -> Locks:
    if settings.storage_connection_string:
        return BlobLeaseLocks(connection_string=settings.storage_connection_string)
    if settings.storage_blob_uri:
        return BlobLeaseLocks(settings.storage_blob_uri, credential=identity.vault_credential())
    logger.warning("no Functions storage configured: registrations are serialized within this process only")
    return ProcessLocks()


def _outbox(settings: Settings, identity: Identity) -> QueueOutbox | None:
    """Events wait in a queue of the Functions storage account while Event Grid is unavailable."""
    if settings.storage_connection_string:
        return QueueOutbox(connection_string=settings.storage_connection_string)
    if settings.storage_queue_uri:
        return QueueOutbox(account_url=settings.storage_queue_uri, credential=identity.vault_credential())
    logger.warning("no Functions storage configured: events Event Grid does not take are lost")
    return None


def _sweep_store(settings: Settings, identity: Identity) -> StorageSweepStore | None:
    """The bounded sweep keeps its checkpoint, due index and work queue in the Functions storage account."""
    if settings.storage_connection_string:
        return StorageSweepStore(settings.name_prefix, connection_string=settings.storage_connection_string)
    if settings.storage_blob_uri and settings.storage_queue_uri:
        return StorageSweepStore(
            settings.name_prefix,
            blob_url=settings.storage_blob_uri,
            queue_url=settings.storage_queue_uri,
            credential=identity.vault_credential(),
        )
    logger.warning("no Functions storage configured: the timer sweeps every registration in one invocation")
    return None
