"""`FakeVault`: Key Vault secrets and certificates in memory, every version kept, implementing `shared.domain.ports.Vault`.

Owns the fake's model of a vault: versions per name, tags, soft delete. Certificates are real self-signed
X.509 certificates (tests/fakes/certificates.py) and share the secrets' namespace as in Key Vault: each
certificate version has a backing secret of the same name and version, holding its PKCS#12 (base64, no
password), which only the certificate changes (a secret write or delete on its name is refused as the
stand-in refuses it, and a certificate cannot take the name of a secret). `YieldingVault` is the same vault
whose port calls yield to the event loop first, and whose listing yields between pages.

tests/contract/ checks this fake against `shared.adapters.keyvault.KeyVault` on the stand-in.
"""

from __future__ import annotations

import asyncio
import calendar
import functools
import itertools
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.adapters.x509 import certificate_key, public_certificate
from shared.domain.errors import InvalidRequest, UpstreamError
from shared.domain.model import (
    CertificateKey,
    Listing,
    RecordPage,
    Secret,
    SecretSummary,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.registry import Registry, Tag
from shared.settings import SETTINGS
from tests.fakes.certificates import self_signed
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
    managed: bool = False  # the backing secret of a certificate version (Key Vault's `managed: true`)


PKCS12_CONTENT_TYPE = "application/x-pkcs12"


@dataclass
class CertificateVersion:
    """One version of a Key Vault certificate; its backing secret has the same name and version."""

    version: str
    der: bytes
    pkcs12: str  # base64, no password: what the backing secret holds
    tags: dict[str, str]


class FakeVault(FaultSwitches):
    """Key Vault secrets in memory, every version kept, implementing `shared.domain.ports.Vault`.

    As the deployed vault (infra/app/keyvault.bicep) and the stand-in's: soft delete with purge protection
    on (`purge_protection=False` for a vault without it). `name_prefix` is the deployment's NAME_PREFIX:
    `client_secrets` (and `client_certificates`) list only the client secrets (certificates) it manages, as
    `KeyVault.client_secrets` does. `now` dates the certificates Key Vault creates (the wall clock unless a
    test's clock is given).
    """

    def __init__(
        self,
        url: str = VAULT_URL,
        name_prefix: str = DEFAULT_NAME_PREFIX,
        *,
        purge_protection: bool = True,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        super().__init__()
        self.url = url
        self.name_prefix = name_prefix
        self.purge_protection = purge_protection
        self.now = now or (lambda: datetime.now(UTC))
        self.versions: dict[str, list[VaultVersion]] = {}  # certificates' backing secrets among them
        self.deleted: dict[str, list[VaultVersion]] = {}
        self.certificates: dict[str, list[CertificateVersion]] = {}
        self.deleted_certificates: dict[str, list[CertificateVersion]] = {}
        self._deleted_backing: dict[str, list[VaultVersion]] = {}  # deleted certificates' backing secrets
        self._serial = itertools.count(1)

    # --- inspection (not part of the port) ---
    def latest(self, name: str) -> VaultVersion | None:
        versions = self.versions.get(name)
        return versions[-1] if versions else None

    def version_count(self, name: str) -> int:
        return len(self.versions.get(name, ()))

    def version_counts(self) -> dict[str, int]:
        return {name: len(versions) for name, versions in self.versions.items()}

    def latest_certificate(self, name: str) -> CertificateVersion | None:
        versions = self.certificates.get(name)
        return versions[-1] if versions else None

    def certificate_version_count(self, name: str) -> int:
        return len(self.certificates.get(name, ()))

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

    def _stored_certificate(self, name: str, version: CertificateVersion, with_key: bool) -> StoredCertificate:
        return StoredCertificate(
            name=name,
            version=version.version,
            uri=f"{self.url}/secrets/{name}",
            tags=dict(version.tags),
            certificate=public_certificate(version.der),
            key=_certificate_key(version.pkcs12) if with_key else None,
        )

    def _refuse_if_managed(self, name: str, operation: str) -> None:
        """A certificate's backing secret changes only through its certificate (the stand-in's 403)."""
        if name in self.certificates or name in self.deleted_certificates:
            raise UpstreamError(
                f"Key Vault refused to {operation} a secret managed by a certificate", "keyvault", 403, "Forbidden"
            )

    def _add_certificate_version(self, name: str, der: bytes, pkcs12: str, tags: dict[str, str]) -> StoredCertificate:
        """A certificate version and its backing secret version, under one version id."""
        version = CertificateVersion(f"v{next(self._serial):04d}", der, pkcs12, dict(tags))
        self.certificates.setdefault(name, []).append(version)
        expires = public_certificate(der).not_after
        backing = VaultVersion(version.version, pkcs12, PKCS12_CONTENT_TYPE, dict(tags), expires, managed=True)
        self.versions.setdefault(name, []).append(backing)
        return self._stored_certificate(name, version, with_key=False)

    def _certificate_name_free(self, name: str) -> None:
        """Certificates and secrets share one namespace: a secret's name (live or deleted) cannot be taken."""
        if name in self.deleted or any(not v.managed for v in self.versions.get(name, ())):
            raise UpstreamError("Key Vault refused a certificate named like a secret", "keyvault", 409, "Conflict")

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
        self._refuse_if_managed(name, "set")
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
        self._refuse_if_managed(name, "delete")
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
            if Registry(self.name_prefix).is_swept_secret(latest.tags):
                yield SecretSummary(name, dict(latest.tags), latest.expires)

    async def create_certificate(
        self, name: str, subject: str, validity_months: int, tags: dict[str, str]
    ) -> StoredCertificate:
        call = {"name": name, "subject": subject, "validity_months": validity_months, "tags": tags}
        self._enter("create_certificate", **call)
        self._certificate_name_free(name)
        if name in self.deleted_certificates:
            # Soft-deleted by an offboarding: the adapter recovers the name (every version) before creating.
            self._recover_certificate(name)
        not_before = self.now().replace(microsecond=0)
        issued = self_signed(subject, not_before, _add_months(not_before, validity_months))
        created = self._add_certificate_version(name, issued.der, issued.pkcs12_base64, tags)
        self._leave("create_certificate", **call)
        return created

    async def read_certificate(self, name: str, with_key: bool = False) -> StoredCertificate | None:
        self._enter("read_certificate", name=name, with_key=with_key)
        latest = self.latest_certificate(name)
        return self._stored_certificate(name, latest, with_key) if latest else None

    async def import_certificate(self, name: str, key: CertificateKey, tags: dict[str, str]) -> StoredCertificate:
        call = {"name": name, "thumbprint": key.certificate.thumbprint_sha256, "tags": tags}
        self._enter("import_certificate", **call)
        self._certificate_name_free(name)
        if name in self.deleted_certificates:
            raise UpstreamError("Key Vault refused to import over a deleted certificate", "keyvault", 409, "Conflict")
        # What Key Vault stores is what was imported: the bundle's own certificate and key.
        pkcs12 = key.pkcs12.reveal()
        der = _certificate_key(pkcs12).certificate.der
        imported = self._add_certificate_version(name, der, pkcs12, tags)
        self._leave("import_certificate", **call)
        return imported

    async def update_certificate_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        call = {"name": name, "version": version, "tags": tags}
        self._enter("update_certificate_tags", **call)
        found = next((v for v in self.certificates.get(name, ()) if v.version == version), None)
        if found is None:
            raise UpstreamError(
                "Key Vault failed while updating a certificate's tags", "keyvault", 404, "CertificateNotFound"
            )
        found.tags = dict(tags)
        self._leave("update_certificate_tags", **call)

    async def delete_certificate(self, name: str) -> bool:
        self._enter("delete_certificate", name=name)
        versions = self.certificates.pop(name, None)
        if versions is None:
            return False
        self.deleted_certificates[name] = versions
        # Its backing secret (and key) go with it, held with the deleted certificate, not as a deleted secret.
        self._deleted_backing[name] = self.versions.pop(name, [])
        self._leave("delete_certificate", name=name)
        return True

    async def purge_certificate(self, name: str) -> bool:
        self._enter("purge_certificate", name=name)
        if name not in self.deleted_certificates:
            return False
        if self.purge_protection:
            raise UpstreamError("Key Vault failed while purging a deleted certificate", "keyvault", 403, "Forbidden")
        del self.deleted_certificates[name]
        self._deleted_backing.pop(name, None)
        return True

    async def client_certificates(self) -> AsyncIterator[SecretSummary]:
        self._enter("client_certificates")
        for name in sorted(self.certificates):
            latest = self.certificates[name][-1]
            if Registry(self.name_prefix).is_managed_client_certificate(latest.tags):
                yield SecretSummary(name, dict(latest.tags), public_certificate(latest.der).not_after)

    async def record_page(self, listing: Listing, link: str | None) -> RecordPage:
        """Pages of 25 in name order, resumed after the last name a page held (as the stand-in does); only this
        vault's own links are taken back."""
        self._enter("record_page", listing=listing.value, link=link)
        prefix = f"{VAULT_URL}/{listing.value}?after="
        if link is not None and not link.startswith(prefix):
            raise InvalidRequest("The continuation token is not one this service gave.", field="continuationToken")
        after = link[len(prefix) :] if link is not None else ""
        if listing is Listing.SECRETS:
            latest = {name: (v[-1].tags, v[-1].expires) for name, v in self.versions.items() if v}
        else:
            latest = {
                n: (v[-1].tags, public_certificate(v[-1].der).not_after) for n, v in self.certificates.items() if v
            }
        names = [name for name in sorted(latest) if name > after]
        page, rest = names[:25], names[25:]
        records = tuple(
            SecretSummary(name, dict(latest[name][0]), latest[name][1])
            for name in page
            if latest[name][0].get(Tag.MANAGED_BY) == self.name_prefix
        )
        return RecordPage(records, f"{prefix}{page[-1]}" if rest else None)

    def _recover_certificate(self, name: str) -> None:
        self.certificates[name] = self.deleted_certificates.pop(name)
        self.versions[name] = self._deleted_backing.pop(name, [])


@functools.lru_cache(maxsize=1024)
def _certificate_key(pkcs12: str) -> CertificateKey:
    """`shared.adapters.x509.certificate_key`, as the adapter reads a backing secret, once per bundle: loading a
    PKCS#12 validates its RSA key (~35 ms), and a bundle never changes."""
    return certificate_key(pkcs12)


def _add_months(moment: datetime, months: int) -> datetime:
    """The same day and time `months` calendar months on (the month's last day when it is shorter)."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


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

    async def create_certificate(
        self, name: str, subject: str, validity_months: int, tags: dict[str, str]
    ) -> StoredCertificate:
        await asyncio.sleep(0)
        return await super().create_certificate(name, subject, validity_months, tags)

    async def read_certificate(self, name: str, with_key: bool = False) -> StoredCertificate | None:
        await asyncio.sleep(0)
        return await super().read_certificate(name, with_key)

    async def import_certificate(self, name: str, key: CertificateKey, tags: dict[str, str]) -> StoredCertificate:
        await asyncio.sleep(0)
        return await super().import_certificate(name, key, tags)

    async def update_certificate_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        await asyncio.sleep(0)
        await super().update_certificate_tags(name, version, tags)

    async def delete_certificate(self, name: str) -> bool:
        await asyncio.sleep(0)
        return await super().delete_certificate(name)

    async def client_certificates(self) -> AsyncIterator[SecretSummary]:
        """The same listing, a page of 25 at a time: the event loop runs between pages, as over HTTP."""
        listed = 0
        async for summary in super().client_certificates():
            if listed % 25 == 0:
                await asyncio.sleep(0)
            listed += 1
            yield summary

    async def client_secrets(self) -> AsyncIterator[SecretSummary]:
        """The same listing, a page of 25 at a time: the event loop runs between pages, as over HTTP."""
        listed = 0
        async for summary in super().client_secrets():
            if listed % 25 == 0:
                await asyncio.sleep(0)
            listed += 1
            yield summary
