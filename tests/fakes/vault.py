"""`FakeVault`: Key Vault secrets in memory, every version kept, implementing `shared.domain.ports.Vault`.

Owns the fake's model of a vault: versions per name, tags, soft delete. `YieldingVault` is the same vault
whose port calls yield to the event loop first, and whose listing yields between pages.

tests/contract/ checks this fake against `shared.adapters.keyvault.KeyVault` on the stand-in.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime

from shared.domain.errors import UpstreamError
from shared.domain.model import Secret, SecretSummary, StoredSecret
from shared.domain.registry import Registry, Tag
from shared.settings import SETTINGS
from tests.fakes.ids import VAULT_URL
from tests.fakes.switches import FaultSwitches

DEFAULT_NAME_PREFIX = str(SETTINGS["NAME_PREFIX"][0])  # what a deployment without NAME_PREFIX uses


@dataclass
class VaultVersion:
    version: str
    value: str
    content_type: str
    tags: dict[str, str]
    expires: datetime | None


class FakeVault(FaultSwitches):
    """Key Vault secrets in memory, every version kept, implementing `shared.domain.ports.Vault`.

    As the deployed vault (infra/app/keyvault.bicep) and the stand-in's: soft delete with purge protection
    on (`purge_protection=False` for a vault without it). `name_prefix` is the deployment's NAME_PREFIX:
    `client_secrets` lists only the client secrets it manages, as `KeyVault.client_secrets` does.
    """

    def __init__(
        self, url: str = VAULT_URL, name_prefix: str = DEFAULT_NAME_PREFIX, *, purge_protection: bool = True
    ) -> None:
        super().__init__()
        self.url = url
        self.name_prefix = name_prefix
        self.purge_protection = purge_protection
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
        version = VaultVersion(f"v{next(self._serial):04d}", value, content_type, dict(tags), _to_the_second(expires))
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
        if name in self.deleted:
            # Soft-deleted by an offboarding: the adapter recovers the name (every version) before writing.
            self.versions[name] = self.deleted.pop(name)
        version = VaultVersion(f"v{next(self._serial):04d}", value, content_type, dict(tags), _to_the_second(expires))
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
        return {v.tags[Tag.KEY_ID] for v in self.versions.get(name, ()) if Tag.KEY_ID in v.tags}

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
        if name not in self.deleted:
            return False
        if self.purge_protection:
            raise UpstreamError("Key Vault failed while purging a deleted secret", "keyvault", 403, "Forbidden")
        del self.deleted[name]
        return True

    async def client_secrets(self) -> AsyncIterator[SecretSummary]:
        self._enter("client_secrets")
        for name in sorted(self.versions):
            latest = self.versions[name][-1]
            if Registry(self.name_prefix).is_managed_client_secret(latest.tags):
                yield SecretSummary(name, dict(latest.tags), latest.expires)


def _to_the_second(moment: datetime | None) -> datetime | None:
    """Key Vault keeps `exp` as whole seconds since the epoch."""
    return moment.replace(microsecond=0) if moment is not None else None


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
