"""Key Vault through azure-keyvault-secrets (aio): the only module that speaks Key Vault.

Secrets are the registry of what this service manages: their tags say which tenant,
integration, app and credential keyId each one belongs to, so rotation can enumerate the
vault instead of a private table.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
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

from shared.adapters.azure_core_errors import request_ids
from shared.adapters.identity import Identity
from shared.adapters.tls import azure_transport
from shared.domain.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable, request_ids_text
from shared.domain.model import Secret, SecretSummary, StoredSecret
from shared.domain.registry import Tag
from shared.settings import Settings

logger = logging.getLogger(__name__)


class KeyVault:
    def __init__(self, settings: Settings, identity: Identity) -> None:
        self._settings = settings
        self._identity = identity
        self._client: SecretClient | None = None

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
        """Streams the vault's listing (25 per page) and keeps only this deployment's client secrets.

        Listing returns tags and expiry without values, so planning a sweep reads no secret at all.
        Pages go through the client's own pipeline (challenge auth, retries) but are read as JSON:
        the SDK's model deserialization cost about 1 ms of CPU per listed secret, which made the
        sweep of a large vault CPU-bound where it should wait only on Key Vault's pages.
        """
        vault_host = urlsplit(self._settings.key_vault_url).hostname
        url: str | None = "/secrets"
        while url is not None:
            try:
                response = await self.client.send_request(HttpRequest("GET", url))
                response.raise_for_status()
            except (HttpResponseError, ServiceRequestError, ServiceResponseError) as error:
                raise _translate(error, "listing secrets") from error
            page = response.json()
            for item in page.get("value") or []:
                tags = item.get("tags") or {}
                if self._settings.registry.is_managed_client_secret(tags):
                    expires = (item.get("attributes") or {}).get("exp")
                    yield SecretSummary(
                        str(item["id"]).rstrip("/").rsplit("/", 1)[-1],
                        dict(tags),
                        datetime.fromtimestamp(expires, UTC) if expires is not None else None,
                    )
            url = page.get("nextLink") or None
            if url is not None and urlsplit(url).hostname != vault_host:
                # The bearer token goes wherever nextLink points: only ever back to this vault.
                raise UpstreamError("Key Vault's nextLink points away from the vault", "keyvault", 200, None)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


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
