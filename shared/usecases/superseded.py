"""Retiring the credentials a switch of credential type left behind, once their grace period is over.

Onboarding with another credential type proves the new credential first, then tags the old one's Key
Vault record `superseded-by` with `retire-after` at the end of the rotation grace period, so consumers
still reading the old reference keep working (shared/usecases/onboarding.py, `_supersede`). Rotation
calls `retire` on every run; after the moment has passed it takes the old credential off the app and its
record (and any staging copy) out of Key Vault. It never touches the current credential: a client secret
is retired only when the current credential is not a secret, a certificate only by its own keyId.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.domain.audit import audit
from shared.domain.model import AppRegistration, StoredCertificate, StoredSecret
from shared.domain.ports import Directory, Vault
from shared.domain.registry import Registry, Tag, parse_iso


@dataclass(frozen=True)
class Records:
    """A registration's credential records as rotation read them (None: not stored)."""

    secret: StoredSecret | None
    certificate: StoredCertificate | None
    vendor: StoredSecret | None

    @staticmethod
    def current(record: StoredSecret | StoredCertificate | None) -> bool:
        return record is not None and not record.tags.get(Tag.SUPERSEDED_BY)


class SupersededCredentials:
    def __init__(self, registry: Registry, directory: Directory, vault: Vault, now: Callable[[], datetime]) -> None:
        self.registry = registry
        self.directory = directory
        self.vault = vault
        self.now = now

    def due(self, record: StoredSecret | StoredCertificate | None, retire_now: bool) -> bool:
        if record is None or not record.tags.get(Tag.SUPERSEDED_BY):
            return False
        retire_after = parse_iso(record.tags.get(Tag.RETIRE_AFTER))
        return retire_now or retire_after is None or retire_after <= self.now()

    async def retire(
        self, tenant: str, app: AppRegistration, records: Records, retire_now: bool, context: dict[str, str]
    ) -> list[str]:
        """The keyIds taken off the app (secrets and certificates) for superseded credentials now due."""
        removed: list[str] = []
        integration = context["integration"]
        if self.due(records.secret, retire_now):
            assert records.secret is not None
            for password in app.passwords:
                if self.registry.issued_here(password.display_name) and await self.directory.remove_password(
                    tenant, app.object_id, password.key_id
                ):
                    removed.append(password.key_id)
                    audit("secret.retired", context, appObjectId=app.object_id, keyId=password.key_id,
                          reason="superseded")  # fmt: skip
            for name in (records.secret.name, self.registry.staging_secret_name(tenant, integration)):
                if await self.vault.delete(name):
                    audit("secret.deleted", context, secretName=name, reason="superseded")
        if self.due(records.certificate, retire_now):
            assert records.certificate is not None
            key_id = self.registry.key_credential_id(records.certificate.certificate.thumbprint_sha256)
            if await self.directory.remove_key(tenant, app.object_id, key_id):
                removed.append(key_id)
                audit("certificate.retired", context, appObjectId=app.object_id, keyId=key_id, reason="superseded")
            for name in (records.certificate.name, self.registry.staging_certificate_name(tenant, integration)):
                if await self.vault.delete_certificate(name):
                    audit("certificate.deleted", context, certificateName=name, reason="superseded")
        if self.due(records.vendor, retire_now):
            assert records.vendor is not None
            vendor_key = records.vendor.tags.get(Tag.KEY_ID)
            if vendor_key and await self.directory.remove_key(tenant, app.object_id, vendor_key):
                removed.append(vendor_key)
                audit("certificate.retired", context, appObjectId=app.object_id, keyId=vendor_key, reason="superseded")
            if await self.vault.delete(records.vendor.name):
                audit("secret.deleted", context, secretName=records.vendor.name, reason="superseded")
        return removed
