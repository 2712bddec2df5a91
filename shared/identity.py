"""The one place that builds credentials: the managed identity, and client-secret checks of new apps.

In the vendor's home tenant the function's managed identity talks to Graph and Key Vault
directly. `management_credential` is the seam through which other tenants are reached; until a
provisioner app is configured (see README, deployment modes) only the home tenant is.
"""

from __future__ import annotations

import base64
import json
import logging
import re

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity.aio import ClientSecretCredential, ManagedIdentityCredential

from .errors import TenantNotAllowed, UpstreamError, UpstreamUnavailable
from .model import Secret
from .ports import NotReplicatedYet
from .settings import Settings

logger = logging.getLogger(__name__)
AADSTS = re.compile(r"AADSTS(\d+)")
# Codes a brand-new app or secret gets while Entra replicates it: invalid or "expired" secret,
# unknown app, no service principal yet (azure-facts.md; reports of 7000222 for new secrets).
REPLICATION_CODES = frozenset({"7000215", "7000222", "700016", "7000229"})


class _ExpectedVerificationFailures(logging.Filter):
    """azure-identity warns on every failed token request; while a new secret replicates those
    failures are expected and handled (TokenRoleChecker), so they are not worth a warning each."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith("ClientSecretCredential") and _aadsts_text(message) in REPLICATION_CODES)


for _name in (
    "azure.identity.aio._internal.get_token_mixin",
    "azure.identity._internal.get_token_mixin",
    "azure.identity._internal.decorators",
    "azure.identity.aio._internal.decorators",
):
    logging.getLogger(_name).addFilter(_ExpectedVerificationFailures())


class Identity:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._managed_identity: ManagedIdentityCredential | None = None

    def _managed(self) -> ManagedIdentityCredential:
        if self._managed_identity is None:
            client_id = self._settings.managed_identity_client_id
            self._managed_identity = (
                ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
            )
        return self._managed_identity

    def management_credential(self, tenant_id: str) -> AsyncTokenCredential:
        """The credential that manages app registrations in `tenant_id`."""
        if tenant_id == self._settings.home_tenant_id:
            return self._managed()
        raise TenantNotAllowed(
            "This deployment manages only its home tenant; configure the provisioner app to reach customer tenants.",
            tenantId=tenant_id,
        )

    def vault_credential(self) -> AsyncTokenCredential:
        return self._managed()

    async def close(self) -> None:
        if self._managed_identity is not None:
            await self._managed_identity.close()


class TokenRoleChecker:
    """Proves a client secret works by asking Entra for a token, and reads the roles granted in it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def granted_roles(self, tenant_id: str, client_id: str, secret: Secret, scope: str) -> set[str]:
        credential = ClientSecretCredential(
            tenant_id,
            client_id,
            secret.reveal(),
            authority=self._settings.authority_host,
            disable_instance_discovery=self._settings.is_local,
            connection_verify=self._settings.tls_ca_bundle or True,
        )
        try:
            token = await credential.get_token(scope)
        except ClientAuthenticationError as error:
            code = _aadsts(error)
            if code in REPLICATION_CODES:
                raise NotReplicatedYet("the new client secret", f"AADSTS{code}") from None
            raise UpstreamError(
                "Entra refused the new credential", "entra", _status(error), f"AADSTS{code}" if code else None
            ) from None
        except (ServiceRequestError, ServiceResponseError) as error:
            raise UpstreamUnavailable(
                "Entra's token endpoint did not answer", "entra", None, type(error).__name__
            ) from None
        finally:
            await credential.close()
        return _roles(token.token)


def _aadsts(error: ClientAuthenticationError) -> str | None:
    return _aadsts_text(str(error.message or error))


def _aadsts_text(text: str) -> str | None:
    match = AADSTS.search(text)
    return match.group(1) if match else None


def _status(error: ClientAuthenticationError) -> int | None:
    response = getattr(error, "response", None)
    return getattr(response, "status_code", None)


def _roles(access_token: str) -> set[str]:
    """The token's `roles` claim. The token came straight from the authority over TLS; we read it, not trust it."""
    try:
        payload = access_token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise UpstreamError("Entra returned a token that is not a JWT", "entra", 200, None) from exc
    roles = claims.get("roles", [])
    return {str(role) for role in roles} if isinstance(roles, list) else set()
