"""The due index, written on every change: the Vault port with an index entry filed ahead of each write to a credential
record, at the moment the record will next need the sweep (shared/usecases/sweep.py's `next_action_at`).

An entry is only ever added here, never removed: an entry earlier than the record's true next action costs the sweep
one Key Vault read when it comes due (the sweep then moves or drops it), while a missing one would leave the record to
the next full pass. A failed index write is logged and never fails the change: the full pass repairs the index.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime

from shared.domain.errors import OnboardingError
from shared.domain.model import (
    CertificateKey,
    Listing,
    RecordPage,
    SecretSummary,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.ports import SweepStore, Vault
from shared.domain.registry import ProblemRecord, Tag, parse_iso
from shared.domain.sweep_state import EPOCH, DueEntry
from shared.settings import Settings
from shared.usecases.sweep import next_action_at, retry_at

logger = logging.getLogger(__name__)


class IndexingVault:
    def __init__(self, vault: Vault, store: SweepStore, settings: Settings, now: Callable[[], datetime]) -> None:
        self.vault = vault
        self.store = store
        self.settings = settings
        self.now = now

    async def _file(self, listing: Listing, name: str, at: datetime | None, tags: Mapping[str, str]) -> None:
        registry = self.settings.registry
        ours = (
            registry.is_swept_secret(dict(tags))
            if listing is Listing.SECRETS
            else registry.is_managed_client_certificate(dict(tags))
        )
        if at is None or not ours:
            return
        try:
            await self.store.schedule([DueEntry(at, listing, name)])
        except OnboardingError as error:
            logger.warning("the due index missed %s (%s): the next full pass files it", name, error.problem_type)

    # Writes: the entry first, so a change is never in Key Vault without it.
    async def write(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> StoredSecret:
        await self._file(Listing.SECRETS, name, next_action_at(self.settings, tags, expires), tags)
        return await self.vault.write(name, value, content_type, tags, expires)

    async def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        await self._file(Listing.SECRETS, name, tag_action(tags), tags)
        await self.vault.update_tags(name, version, tags)

    async def update_certificate_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        await self._file(Listing.CERTIFICATES, name, tag_action(tags), tags)
        await self.vault.update_certificate_tags(name, version, tags)

    # Certificates: Key Vault sets the expiry, so the entry follows the write (the full pass covers a crash between).
    async def create_certificate(
        self, name: str, subject: str, validity_months: int, tags: dict[str, str]
    ) -> StoredCertificate:
        created = await self.vault.create_certificate(name, subject, validity_months, tags)
        await self._file(Listing.CERTIFICATES, name, next_action_at(self.settings, created.tags, created.expires), tags)
        return created

    async def import_certificate(self, name: str, key: CertificateKey, tags: dict[str, str]) -> StoredCertificate:
        imported = await self.vault.import_certificate(name, key, tags)
        await self._file(
            Listing.CERTIFICATES, name, next_action_at(self.settings, imported.tags, imported.expires), tags
        )
        return imported

    # Everything else passes through.
    async def read(self, name: str, with_value: bool = False) -> StoredSecret | None:
        return await self.vault.read(name, with_value)

    async def stored_key_ids(self, name: str) -> set[str]:
        return await self.vault.stored_key_ids(name)

    def reference(self, name: str) -> str:
        return self.vault.reference(name)

    async def delete(self, name: str) -> bool:
        return await self.vault.delete(name)

    async def purge(self, name: str) -> bool:
        return await self.vault.purge(name)

    def client_secrets(self) -> AsyncIterator[SecretSummary]:
        return self.vault.client_secrets()

    async def read_certificate(self, name: str, with_key: bool = False) -> StoredCertificate | None:
        return await self.vault.read_certificate(name, with_key)

    async def delete_certificate(self, name: str) -> bool:
        return await self.vault.delete_certificate(name)

    async def purge_certificate(self, name: str) -> bool:
        return await self.vault.purge_certificate(name)

    def client_certificates(self) -> AsyncIterator[SecretSummary]:
        return self.vault.client_certificates()

    async def record_page(self, listing: Listing, link: str | None) -> RecordPage:
        return await self.vault.record_page(listing, link)


def tag_action(tags: Mapping[str, str]) -> datetime | None:
    """What a tag update (the version and its expiry unchanged) brings forward: a failed rotation's retry, a rotation
    to finish (at once), a retirement; None when it brings nothing forward (the entry filed with the version stands)."""
    if (problem := ProblemRecord.parse(tags.get(Tag.LAST_PROBLEM))) is not None:
        return retry_at(problem)
    if tags.get(Tag.PENDING) or tags.get(Tag.STAGED):
        return EPOCH
    return parse_iso(tags.get(Tag.RETIRE_AFTER))
