"""Proving a new credential: a real client-credentials token request, and the roles Entra granted in it.

A client secret is sent as it is; a certificate as a client assertion it signs (shared/adapters/x509.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity.aio import ClientAssertionCredential, ClientSecretCredential

from shared.adapters.entra_answers import (
    REPLICATION_CODES,
    aadsts,
    aadsts_text,
    directory_roles_of,
    refused,
    roles_of,
    status_of,
)
from shared.adapters.tls import SharedTransport
from shared.adapters.x509 import client_assertion
from shared.domain.errors import UpstreamError, UpstreamUnavailable
from shared.domain.model import CertificateKey, ClientAssertion, ClientCredential
from shared.domain.ports import NotReplicatedYet
from shared.settings import Settings

logger = logging.getLogger(__name__)
# AADSTS700027 "Client assertion contains an invalid signature. [Reason - The key was not found.]": what a
# certificate added moments ago gets until Entra has replicated it, as 7000215 is for a new secret
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes). Retried within the proof's
# deadline like the other replication codes, then reported pending; never for a client secret.
NEW_KEY_CODES = frozenset({"700027"})


class _ExpectedVerificationFailures(logging.Filter):
    """azure-identity warns on every failed token request; while a new secret replicates those
    failures are expected and handled (TokenRoleChecker), so they are not worth a warning each."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (
            message.startswith(("ClientSecretCredential", "ClientAssertionCredential"))
            and aadsts_text(message) in REPLICATION_CODES | NEW_KEY_CODES
        )


for _name in (
    "azure.identity.aio._internal.get_token_mixin",
    "azure.identity._internal.get_token_mixin",
    "azure.identity._internal.decorators",
    "azure.identity.aio._internal.decorators",
):
    logging.getLogger(_name).addFilter(_ExpectedVerificationFailures())


def app_credential(
    settings: Settings, tenant_id: str, client_id: str, proof: ClientCredential, transport: dict[str, Any]
) -> tuple[ClientSecretCredential | ClientAssertionCredential, frozenset[str]]:
    """An azure-identity credential signing in as the app with `proof`, and the AADSTS codes that mean "Entra
    has not replicated this app or credential yet" for it. `transport`: a SharedTransport's lend(). The
    caller closes the credential."""
    options = {
        "authority": settings.authority_host,
        "disable_instance_discovery": settings.is_local,
        **transport,
    }
    if isinstance(proof, CertificateKey):
        key = proof
        # The audience Entra checks: its token endpoint for the tenant (the certificate-credentials page).
        endpoint = f"{settings.authority_host.rstrip('/')}/{tenant_id}/oauth2/v2.0/token"
        signed = ClientAssertionCredential(
            tenant_id, client_id, lambda: client_assertion(key, client_id, endpoint, datetime.now(UTC)), **options
        )
        return signed, REPLICATION_CODES | NEW_KEY_CODES
    if isinstance(proof, ClientAssertion):
        vendor = proof.assertion
        return ClientAssertionCredential(
            tenant_id, client_id, vendor.reveal, **options
        ), REPLICATION_CODES | NEW_KEY_CODES
    return ClientSecretCredential(tenant_id, client_id, proof.reveal(), **options), REPLICATION_CODES


class TokenRoleChecker:
    """Proves a credential works by asking Entra for a token, and reads the roles granted in it."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # One connection pool for every proof: each proof is a new credential (a new app's secret), and
        # one transport apiece meant a new TCP and TLS handshake to the token endpoint for each of the
        # dozen or so token requests an onboarding makes while the secret replicates. Credentials share
        # no token cache and no cookies (the transport keeps none), only connections.
        self._transport: SharedTransport | None = None

    async def granted_roles(
        self, tenant_id: str, client_id: str, credential_to_prove: ClientCredential, scope: str
    ) -> set[str]:
        return roles_of(await self._token(tenant_id, client_id, credential_to_prove, scope))

    async def directory_roles(
        self, tenant_id: str, client_id: str, credential_to_prove: ClientCredential, scope: str
    ) -> set[str]:
        return directory_roles_of(await self._token(tenant_id, client_id, credential_to_prove, scope))

    async def _token(self, tenant_id: str, client_id: str, credential_to_prove: ClientCredential, scope: str) -> str:
        """A fresh token for `scope`, signed in as the app with `credential_to_prove`."""
        if self._transport is None:
            self._transport = SharedTransport(self._settings.tls_ca_bundle)
        credential, replication = app_credential(
            self._settings, tenant_id, client_id, credential_to_prove, self._transport.lend()
        )
        try:
            token = await credential.get_token(scope)
        except ClientAuthenticationError as error:
            # Chained: azure-identity's message is Entra's error description, which never repeats the
            # client secret (the request's form body, which holds it, is never read or logged here).
            code = aadsts(error)
            if code in replication:  # expected while the credential replicates: retried, not logged
                raise NotReplicatedYet("the new credential", f"AADSTS{code}") from error
            raise UpstreamError(
                "Entra refused the new credential", "entra", status_of(error), f"AADSTS{code}" if code else None,
                upstream_request_ids=refused(error, code, tenant_id),
            ) from error  # fmt: skip
        except (ServiceRequestError, ServiceResponseError) as error:
            logger.info("Entra's token endpoint did not answer for tenant %s: %s", tenant_id, type(error).__name__)
            raise UpstreamUnavailable(
                "Entra's token endpoint did not answer", "entra", None, type(error).__name__
            ) from error
        finally:
            await credential.close()
        return token.token

    async def close(self) -> None:
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
