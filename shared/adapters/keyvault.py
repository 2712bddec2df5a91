"""Key Vault through azure-keyvault-secrets and azure-keyvault-certificates (aio): the only module that speaks Key Vault.

Secrets are the registry of what this service manages: their tags say which tenant,
integration, app and credential keyId each one belongs to, so rotation can enumerate the
vault instead of a private table. Client certificates are Key Vault certificates: Key Vault
creates each key pair, and the certificate's backing secret of the same name holds the PKCS#12
that downstream services read through the same kind of reference as a client secret.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.rest import HttpRequest
from azure.keyvault.secrets import SecretProperties
from azure.keyvault.secrets.aio import SecretClient

if TYPE_CHECKING:
    from azure.keyvault.certificates import KeyVaultCertificate
    from azure.keyvault.certificates.aio import CertificateClient

from shared.adapters.azure_core_errors import request_ids
from shared.adapters.identity import Identity
from shared.adapters.tls import azure_transport
from shared.adapters.x509 import certificate_key, public_certificate
from shared.domain.errors import InvalidRequest, UpstreamError, UpstreamTimeout, UpstreamUnavailable, request_ids_text
from shared.domain.model import (
    CertificateKey,
    Listing,
    RecordPage,
    Secret,
    SecretSummary,
    StoredCertificate,
    StoredSecret,
)
from shared.domain.registry import Tag
from shared.settings import Settings

logger = logging.getLogger(__name__)


class KeyVault:
    def __init__(self, settings: Settings, identity: Identity) -> None:
        self._settings = settings
        self._identity = identity
        self._client: SecretClient | None = None
        self._certificates: CertificateClient | None = None

    @property
    def client(self) -> SecretClient:
        if self._client is None:
            self._client = SecretClient(
                self._settings.key_vault_url,
                self._identity.vault_credential(),
                verify_challenge_resource=self._settings.key_vault_verify_challenge_resource,
                **azure_transport(self._settings.tls_ca_bundle),
            )
        return self._client

    @property
    def certificates(self) -> CertificateClient:
        """Built on first use: only registrations with a certificate need it (and its import costs cold starts)."""
        if self._certificates is None:
            from azure.keyvault.certificates.aio import CertificateClient

            self._certificates = CertificateClient(
                self._settings.key_vault_url,
                self._identity.vault_credential(),
                verify_challenge_resource=self._settings.key_vault_verify_challenge_resource,
                **azure_transport(self._settings.tls_ca_bundle),
            )
        return self._certificates

    def reference(self, name: str) -> str:
        """An App Service / Functions Key Vault reference, versionless so rotation reaches consumers."""
        return f"@Microsoft.KeyVault(SecretUri={self._settings.key_vault_url}/secrets/{name}/)"

    async def read(self, name: str, with_value: bool = False) -> StoredSecret | None:
        try:
            bundle = await self.client.get_secret(name)
        except ResourceNotFoundError:
            return None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "reading a secret") from error
        properties = bundle.properties
        return StoredSecret(
            name=name,
            version=str(properties.version),
            uri=f"{self._settings.key_vault_url}/secrets/{name}",
            tags=dict(properties.tags or {}),
            expires=properties.expires_on,
            value=Secret(bundle.value) if with_value and bundle.value else None,
        )

    async def write(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> StoredSecret:
        try:
            properties = await self._set(name, value, content_type, tags, expires)
        except ResourceExistsError:
            # Soft-deleted by an earlier offboarding: recover the name, then write the new version.
            logger.info("secret %s is soft-deleted; recovering it before writing", name)
            try:
                await self.client.recover_deleted_secret(name)  # the aio client waits until it is done
                properties = await self._set(name, value, content_type, tags, expires)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                raise _translate(error, "recovering a soft-deleted secret") from error
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "writing a secret") from error
        return StoredSecret(
            name=name,
            version=str(properties.version),
            uri=f"{self._settings.key_vault_url}/secrets/{name}",
            tags=dict(properties.tags or {}),
            expires=properties.expires_on,
        )

    async def _set(
        self, name: str, value: str, content_type: str, tags: dict[str, str], expires: datetime | None
    ) -> SecretProperties:
        secret = await self.client.set_secret(name, value, content_type=content_type, tags=tags, expires_on=expires)
        return secret.properties

    async def update_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        try:
            await self.client.update_secret_properties(name, version, tags=tags)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "updating a secret's tags") from error

    async def stored_key_ids(self, name: str) -> set[str]:
        found: set[str] = set()
        try:
            async for properties in self.client.list_properties_of_secret_versions(name):
                key_id = (properties.tags or {}).get(Tag.KEY_ID)
                if key_id:
                    found.add(key_id)
        except ResourceNotFoundError:
            return found
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "listing a secret's versions") from error
        return found

    async def delete(self, name: str) -> bool:
        try:
            await self.client.delete_secret(name)  # the aio client waits until the deletion is done
        except ResourceNotFoundError:
            return False
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "deleting a secret") from error
        return True

    async def purge(self, name: str) -> bool:
        try:
            await self.client.purge_deleted_secret(name)
        except ResourceNotFoundError:
            return False
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "purging a deleted secret") from error
        return True

    async def client_secrets(self) -> AsyncIterator[SecretSummary]:
        """This deployment's client secrets and vendor certificate records, streamed from the listing."""
        async for record in self._records(Listing.SECRETS):
            if self._settings.registry.is_swept_secret(dict(record.tags)):
                yield record

    async def record_page(self, listing: Listing, link: str | None) -> RecordPage:
        """One listing page (25 items: Key Vault's default), read as JSON through the client's own pipeline
        (challenge auth, retries): the SDK's model deserialization cost about 1 ms of CPU per listed item, which
        made a large vault's listing CPU-bound where it should wait only on Key Vault's pages. Listing returns
        tags and expiry without values, so no secret is read."""
        client = self.client if listing is Listing.SECRETS else self.certificates
        url = self._listing_link(listing, link)
        doing = f"listing {listing.value}"
        try:
            response = await client.send_request(HttpRequest("GET", url))
            response.raise_for_status()
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, doing) from error
        page = response.json()
        records = []
        for item in page.get("value") or []:
            tags = item.get("tags") or {}
            if isinstance(item, dict) and tags.get(Tag.MANAGED_BY) == self._settings.registry.prefix:
                expires = (item.get("attributes") or {}).get("exp")
                records.append(
                    SecretSummary(
                        str(item["id"]).rstrip("/").rsplit("/", 1)[-1],
                        dict(tags),
                        datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                    )
                )
        next_link = page.get("nextLink") or None
        if next_link is not None and not self._is_listing_link(listing, str(next_link)):
            # The bearer token goes wherever nextLink points: only ever back to this vault's own listing.
            raise UpstreamError(f"Key Vault's nextLink points away from the vault while {doing}", "keyvault", 200, None)
        return RecordPage(tuple(records), next_link)

    def _listing_link(self, listing: Listing, link: str | None) -> str:
        if link is None:
            return f"/{listing.value}"
        if not self._is_listing_link(listing, link):
            raise InvalidRequest("The continuation token is not one this service gave.", field="continuationToken")
        return link

    def _is_listing_link(self, listing: Listing, link: str) -> bool:
        """A link to a page of this vault's listing of that kind (its host and path, nothing else)."""
        parts, vault = urlsplit(link), urlsplit(self._settings.key_vault_url)
        return (
            parts.scheme == "https"
            and parts.hostname == vault.hostname
            and (parts.port or 443) == (vault.port or 443)
            and parts.username is None
            and parts.path.rstrip("/") == f"/{listing.value}"
            and not parts.fragment
        )

    async def _records(self, listing: Listing) -> AsyncIterator[SecretSummary]:
        link: str | None = None
        while True:
            page = await self.record_page(listing, link)
            for record in page.records:
                yield record
            if page.next_link is None:
                return
            link = page.next_link

    # --- certificates ---
    async def create_certificate(
        self, name: str, subject: str, validity_months: int, tags: dict[str, str]
    ) -> StoredCertificate:
        from azure.keyvault.certificates import (
            CertificateContentType,
            CertificatePolicy,
            CertificatePolicyAction,
            KeyType,
            LifetimeAction,
        )

        policy = CertificatePolicy(
            issuer_name="Self",
            subject=subject,
            key_type=KeyType.rsa,
            key_size=2048,
            # Exportable: downstream services read the PKCS#12 through a Key Vault reference, as they read a
            # client secret, and sign their own assertions (docs/credentials.md, "Why an exportable key").
            exportable=True,
            reuse_key=False,
            content_type=CertificateContentType.pkcs12,
            validity_in_months=validity_months,
            # Never AutoRenew: Key Vault would make a new key the latest version before it is on the app, and
            # every consumer would switch to a certificate Entra refuses. Rotation renews (shared/usecases).
            lifetime_actions=[LifetimeAction(CertificatePolicyAction.email_contacts, days_before_expiry=30)],
        )
        try:
            created = await self._create(name, policy, tags)
        except ResourceExistsError:
            # Soft-deleted by an earlier offboarding: recover the name, then create the new version.
            logger.info("certificate %s is soft-deleted; recovering it before creating a version", name)
            try:
                await self.certificates.recover_deleted_certificate(name)
                created = await self._create(name, policy, tags)
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                raise _translate(error, "recovering a soft-deleted certificate") from error
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "creating a certificate") from error
        return self._stored_certificate(name, created)

    async def _create(self, name: str, policy: Any, tags: dict[str, str]) -> KeyVaultCertificate:
        from azure.keyvault.certificates import KeyVaultCertificate

        # The SDK polls the pending operation every 5 s by default; a self-signed certificate is usually ready
        # within a second or two, and an onboarding waits on it.
        created = await self.certificates.create_certificate(name, policy, tags=tags, _polling_interval=1)
        if not isinstance(created, KeyVaultCertificate):
            raise UpstreamError(
                f"Key Vault did not complete the certificate ({created.status}: {created.status_details})",
                "keyvault", 200, str(created.error.code) if created.error else None,
            )  # fmt: skip
        return created

    async def read_certificate(self, name: str, with_key: bool = False) -> StoredCertificate | None:
        try:
            found = await self.certificates.get_certificate(name)
        except ResourceNotFoundError:
            return None
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "reading a certificate") from error
        stored = self._stored_certificate(name, found)
        if not with_key:
            return stored
        try:
            # The backing secret of this very version (never "latest": a rotation may promote in between).
            bundle = await self.client.get_secret(name, stored.version)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "reading a certificate's key") from error
        if not bundle.value:
            raise UpstreamError("Key Vault returned a certificate's secret without its value", "keyvault", 200, None)
        key = certificate_key(bundle.value)
        if key.certificate.thumbprint_sha256 != stored.certificate.thumbprint_sha256:
            raise UpstreamError("Key Vault's certificate and its secret disagree", "keyvault", 200, None)
        return StoredCertificate(stored.name, stored.version, stored.uri, stored.tags, stored.certificate, key)

    async def import_certificate(self, name: str, key: CertificateKey, tags: dict[str, str]) -> StoredCertificate:
        import base64

        try:
            imported = await self.certificates.import_certificate(
                name, base64.b64decode(key.pkcs12.reveal()), tags=tags
            )
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "importing a certificate") from error
        return self._stored_certificate(name, imported)

    async def update_certificate_tags(self, name: str, version: str, tags: dict[str, str]) -> None:
        try:
            await self.certificates.update_certificate_properties(name, version, tags=tags)
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "updating a certificate's tags") from error

    async def delete_certificate(self, name: str) -> bool:
        try:
            await self.certificates.delete_certificate(name)  # the aio client waits until the deletion is done
        except ResourceNotFoundError:
            return False
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "deleting a certificate") from error
        return True

    async def purge_certificate(self, name: str) -> bool:
        try:
            await self.certificates.purge_deleted_certificate(name)
        except ResourceNotFoundError:
            return False
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
            raise _translate(error, "purging a deleted certificate") from error
        return True

    async def client_certificates(self) -> AsyncIterator[SecretSummary]:
        """This deployment's client certificates, with their tags and expiry, from the vault's listing."""
        async for record in self._records(Listing.CERTIFICATES):
            if self._settings.registry.is_managed_client_certificate(dict(record.tags)):
                yield record

    def _stored_certificate(self, name: str, found: KeyVaultCertificate) -> StoredCertificate:
        if not found.cer or found.properties is None:
            raise UpstreamError("Key Vault returned a certificate without its public part", "keyvault", 200, None)
        return StoredCertificate(
            name=name,
            version=str(found.properties.version),
            uri=f"{self._settings.key_vault_url}/secrets/{name}",
            tags=dict(found.properties.tags or {}),
            certificate=public_certificate(bytes(found.cer)),
        )

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
        if self._certificates is not None:
            await self._certificates.close()
            self._certificates = None


def _translate(error: AzureError, doing: str) -> Exception:
    """The project's error for a failed Key Vault call, with the answer's request ids, logged once here.

    The caller chains `error` as the cause: azure-core's message is the status and Key Vault's error
    body (code and message), which names a secret at most, never its value."""
    ids = request_ids(error)
    if isinstance(error, ServiceRequestError | ServiceResponseError):
        logger.info("Key Vault did not answer while %s: %s (%s)", doing, type(error).__name__, request_ids_text(ids))
        return UpstreamUnavailable(
            f"Key Vault did not answer while {doing}", "keyvault", None, type(error).__name__,
            upstream_request_ids=ids,
        )  # fmt: skip
    assert isinstance(error, HttpResponseError)
    status = error.status_code
    code = error.error.code if error.error is not None else None
    logger.info("Key Vault answered %s %s while %s (%s)", status, code, doing, request_ids_text(ids))
    if status in (429, 503):
        retry_after = getattr(error.response, "headers", {}).get("Retry-After")
        return UpstreamUnavailable(
            f"Key Vault is throttling while {doing}", "keyvault", status, code,
            retry_after=float(retry_after) if retry_after and retry_after.isdigit() else None,
            upstream_request_ids=ids,
        )  # fmt: skip
    if status == 504:
        return UpstreamTimeout(f"Key Vault timed out while {doing}", "keyvault", status, code, upstream_request_ids=ids)
    return UpstreamError(f"Key Vault failed while {doing}", "keyvault", status, code, upstream_request_ids=ids)
