"""The one place that builds this service's credentials: the managed identity, and the provisioner app per tenant.

In the vendor's home tenant the function's managed identity talks to Graph and Key Vault
directly. `management_credential` is the seam through which other tenants are reached; until a
provisioner app is configured (see README, deployment modes) only the home tenant is.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, Protocol, TypeVar

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError, ServiceResponseError
from azure.identity.aio import ClientAssertionCredential, ManagedIdentityCredential

from shared.adapters.entra_answers import aadsts, refused, roles_of, status_of, token_claims, token_refusal
from shared.adapters.tls import SharedTransport
from shared.domain.errors import (
    ConsentRequired,
    TenantNotAllowed,
    TenantNotFound,
    UpstreamError,
    UpstreamUnavailable,
)
from shared.domain.model import PROVISIONER_ROLES
from shared.settings import Settings

logger = logging.getLogger(__name__)
C = TypeVar("C")  # a client built per tenant (TenantClients)
# AADSTS90002 InvalidTenantName: "The tenant name wasn't found in the data store"
# (https://learn.microsoft.com/entra/identity-platform/reference-error-codes): a mistyped or made-up id.
TENANT_NOT_FOUND_CODE = "90002"
# Entra's answers when the provisioner has no service principal in the tenant: nobody consented.
NOT_CONSENTED_CODES = frozenset({"7000229", "700016", "650052", "65001"})
# How many customer tenants a worker keeps a credential for (and, in graph.py, a Graph client),
# least recently used out. What a kept credential saves is a token request: Entra's access tokens
# live 60-90 minutes (https://learn.microsoft.com/entra/identity-platform/access-tokens#token-lifetime),
# so a tenant evicted and contacted again pays one round trip to Entra, beside the ~48 Graph requests
# of an onboarding; the rotation sweep reaches a tenant once in 6 hours, after its token has expired
# anyway. A kept tenant (credential, tokens and Graph client) holds about 35 KiB, measured with
# tracemalloc over 200 consented tenants, so the bound holds these caches under 9 MiB whatever
# tenant ids callers send (tests/functions/test_tenant_caches.py).
TENANT_CACHE_SIZE = 256


class FederatedCredential(AsyncTokenCredential):
    """Tokens for a customer tenant as the multi-tenant provisioner app, with no secret anywhere.

    The managed identity's token for the cloud's token exchange audience (api://AzureADTokenExchange in the
    public cloud) is the client assertion: the
    provisioner app trusts it through a federated identity credential (issuer = the home
    tenant, subject = the identity's object id). ClientAssertionCredential calls its assertion
    function synchronously, so the assertion is fetched here, asynchronously, before each token
    request: no blocking I/O on the event loop.

    `transport` is lent by the Identity, one for all tenants (one TLS context and connection pool,
    shared/adapters/tls.py); `settle` hears how each token request ended (None: Entra issued a token), so the
    Identity keeps only tenants that answered.
    """

    def __init__(
        self, identity: ManagedIdentityCredential, settings: Settings, tenant_id: str, client_id: str,
        transport: dict[str, Any], settle: Callable[[FederatedCredential, Exception | None], Awaitable[None]],
    ) -> None:  # fmt: skip
        self.tenant_id = tenant_id
        self.closed = False
        self._identity = identity
        self._assertion = ""
        self._settle = settle
        self._exchange_scope = settings.cloud.federation_scope
        self._inner = ClientAssertionCredential(
            tenant_id,
            client_id,
            lambda: self._assertion,
            authority=settings.authority_host,
            disable_instance_discovery=settings.is_local,
            **transport,
        )

    async def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:  # fmt: skip
        self._assertion = (await self._identity.get_token(self._exchange_scope)).token
        try:
            token = await self._inner.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        except Exception as error:
            await self._settle(self, error)
            raise
        await self._settle(self, None)
        return token

    async def close(self) -> None:
        self.closed = True
        await self._inner.close()

    async def __aexit__(self, *args: object) -> None:
        await self.close()


class Identity:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._managed_identity: ManagedIdentityCredential | None = None
        self.tenant_cache_size = TENANT_CACHE_SIZE
        # Tenants that answered with a token, least recently used first, at most tenant_cache_size.
        # Any GUID in a URL reaches this class, so a tenant is kept only once Entra issued it a token:
        # unknown and unconsented tenants never push out the customers being served.
        self._federated: OrderedDict[str, FederatedCredential] = OrderedDict()
        # Tenants asked and not yet answered: concurrent first requests share one credential. A
        # failed token request removes its tenant; the bound holds whatever is never asked.
        self._first_contact: OrderedDict[str, FederatedCredential] = OrderedDict()
        # One connection pool for every tenant's token requests: they all go to the same authority.
        self._transport: SharedTransport | None = None

    def managed_credential(self) -> ManagedIdentityCredential:
        """This service's own managed identity (one per worker)."""
        return self._managed()

    def _managed(self) -> ManagedIdentityCredential:
        if self._managed_identity is None:
            client_id = self._settings.managed_identity_client_id
            self._managed_identity = (
                ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()
            )
        return self._managed_identity

    def management_credential(self, tenant_id: str) -> AsyncTokenCredential:
        """The credential that manages app registrations in `tenant_id`: the managed identity at home,
        the provisioner app (federated, kept per tenant once it answered: `_settle`) anywhere else."""
        provisioner = self._settings.provisioner_client_id
        if tenant_id == self._settings.home_tenant_id:
            if self._settings.home_tenant_refused:
                # A caller onboarding customers must not be able to register apps with application
                # permissions over the vendor's own directory: the home tenant is opt-in in this mode.
                raise TenantNotAllowed.home_tenant(tenant_id)
            return self._managed()
        if provisioner is None:
            raise TenantNotAllowed(
                "This deployment manages only its home tenant; configure PROVISIONER_CLIENT_ID to reach customer tenants.",
                tenantId=tenant_id,
            )
        credential = self._federated.get(tenant_id)
        if credential is not None:
            self._federated.move_to_end(tenant_id)
            return credential
        credential = self._first_contact.get(tenant_id)
        if credential is None:
            if self._transport is None:
                self._transport = SharedTransport(self._settings.tls_ca_bundle)
            credential = FederatedCredential(
                self._managed(), self._settings, tenant_id, provisioner, self._transport.lend(), self._settle
            )
            self._first_contact[tenant_id] = credential
            if len(self._first_contact) > self.tenant_cache_size:
                self._first_contact.popitem(last=False)  # forgotten, not closed: a request may still be using it
        return credential

    def keeps(self, tenant_id: str, credential: AsyncTokenCredential) -> bool:
        """Whether `credential` is the one kept for `tenant_id` (the managed identity, or a customer
        tenant that answered): what is built on it is worth keeping too (graph.py)."""
        return credential is self._managed_identity or self._federated.get(tenant_id) is credential

    async def _settle(self, credential: FederatedCredential, error: Exception | None) -> None:
        """Keep a tenant's credential once Entra issued it a token; drop it when Entra refuses it (consent
        revoked, tenant gone).

        Closing an evicted credential cannot break a request still using it: it borrows the shared
        transport, which its close leaves open (shared/adapters/tls.py), so the request goes on and only that
        credential's token cache goes with it."""
        tenant_id = credential.tenant_id
        if self._first_contact.get(tenant_id) is credential:
            del self._first_contact[tenant_id]
        evicted: list[FederatedCredential] = []
        if error is None:
            # Never one evicted (and closed) earlier whose request in flight has just finished.
            if not credential.closed and tenant_id not in self._federated:
                self._federated[tenant_id] = credential
                while len(self._federated) > self.tenant_cache_size:
                    evicted.append(self._federated.popitem(last=False)[1])
        elif isinstance(error, ClientAuthenticationError) and self._federated.get(tenant_id) is credential:
            evicted.append(self._federated.pop(tenant_id))
        for old in evicted:
            await old.close()

    def consent_url(self, tenant_id: str) -> str | None:
        """Where a customer's admin grants the provisioner app its permissions, once."""
        provisioner = self._settings.provisioner_client_id
        if provisioner is None:
            return None
        return f"{self._settings.public_authority}/{tenant_id}/adminconsent?client_id={provisioner}"

    async def consent(self, tenant_id: str) -> tuple[bool, set[str]]:
        """(consented, the provisioner's roles in the tenant), from a real token request."""
        consented, roles, _ = await self._consent(tenant_id)
        return consented, roles

    async def _consent(self, tenant_id: str) -> tuple[bool, set[str], dict[str, str]]:
        """consent(), and Entra's ids of the refusal when it is one (ENTRA_IDS)."""
        credential = self.management_credential(tenant_id)
        try:
            # As the Graph client asks (kiota requests CAE tokens, cached apart from others): the token
            # that proves consent is then the one the onboarding's first Graph call uses, not a second fetch.
            token = await credential.get_token(self._settings.graph_scope, enable_cae=True)
        except ClientAuthenticationError as error:
            code = aadsts(error)
            ids = refused(error, code, tenant_id)
            if code in NOT_CONSENTED_CODES:
                return False, set(), ids
            if code == TENANT_NOT_FOUND_CODE:
                raise TenantNotFound(
                    "Entra knows no tenant with this id.", tenantId=tenant_id, upstream_request_ids=ids
                ) from error
            raise UpstreamError(
                "Entra refused the provisioner's token request",
                "entra",
                status_of(error),
                f"AADSTS{code}" if code else None,
                tenantId=tenant_id,
                upstream_request_ids=ids,
            ) from error
        except (ServiceRequestError, ServiceResponseError) as error:
            logger.info("Entra's token endpoint did not answer for tenant %s: %s", tenant_id, type(error).__name__)
            raise UpstreamUnavailable(
                "Entra's token endpoint did not answer", "entra", None, type(error).__name__
            ) from error
        return True, roles_of(token.token), {}

    async def ensure_reachable(self, tenant_id: str) -> None:
        """Raise ConsentRequired, with the admin consent URL, unless the tenant can be managed now."""
        if tenant_id == self._settings.home_tenant_id:
            self.management_credential(tenant_id)  # refuses the home tenant where it is not allowed
            return
        consented, roles, refusal = await self._consent(tenant_id)
        missing = sorted(PROVISIONER_ROLES - roles)
        if not consented or missing:
            raise ConsentRequired(
                "The customer's admin has not consented to the provisioning app"
                + (f" with {', '.join(missing)}" if consented else "")
                + "; send them the consent URL.",
                tenantId=tenant_id,
                consentUrl=self.consent_url(tenant_id),
                missingRoles=missing or None,
                upstream_request_ids=refusal,  # Entra's refusal of the token request, when that is how we know
            )

    def ensure_allowed(self, tenant_id: str) -> None:
        """TenantNotAllowed for a tenant this deployment may not manage (asks Entra nothing)."""
        self.management_credential(tenant_id)

    async def warm_up(self) -> None:
        """The managed identity's token for the exchange that reaches customer tenants, fetched and cached."""
        await self._exchange_token()

    async def _exchange_token(self) -> str:
        """The managed identity's token for the federated exchange, a refusal told as the project's error (a
        transient one as UpstreamUnavailable): it is the assertion every federated token request carries."""
        try:
            token: AccessToken = await self._managed().get_token(self._settings.cloud.federation_scope)
        except ClientAuthenticationError as error:
            raise token_refusal(error, self._settings.home_tenant_id, "the managed identity's token") from error
        return token.token

    async def own_identity(self) -> tuple[str, str]:
        """(issuer, subject) of this service's managed identity tokens for the exchange, read from such a token:
        what a federated credential trusting it must name, in whichever cloud this runs."""
        claims = token_claims(await self._exchange_token())
        issuer, subject = claims.get("iss"), claims.get("sub")
        if not isinstance(issuer, str) or not isinstance(subject, str):
            raise UpstreamError("The managed identity's token has no issuer or subject", "entra", 200, None)
        return issuer, subject

    async def roles(self, tenant_id: str, client_id: str, scope: str) -> set[str] | None:
        """The ConnectorTokens port: a connector app's token in `tenant_id`, its assertion the managed identity's
        token for the exchange (the connector trusts this identity for exactly this proof), and its roles.
        None when the tenant has not consented to the connector (no service principal there)."""
        assertion = await self._exchange_token()
        if self._transport is None:
            self._transport = SharedTransport(self._settings.tls_ca_bundle)
        credential = ClientAssertionCredential(
            tenant_id, client_id, lambda: assertion, authority=self._settings.authority_host,
            disable_instance_discovery=self._settings.is_local, **self._transport.lend(),
        )  # fmt: skip
        try:
            token = await credential.get_token(scope)
        except ClientAuthenticationError as error:
            if aadsts(error) in NOT_CONSENTED_CODES:
                return None
            raise token_refusal(error, tenant_id, "the connector's token request") from error
        except (ServiceRequestError, ServiceResponseError) as error:
            raise UpstreamUnavailable(
                "Entra's token endpoint did not answer", "entra", None, type(error).__name__
            ) from error
        finally:
            await credential.close()
        return roles_of(token.token)

    def vault_credential(self) -> AsyncTokenCredential:
        return self._managed()

    async def close(self) -> None:
        for credential in [*self._federated.values(), *self._first_contact.values()]:
            await credential.close()
        self._federated.clear()
        self._first_contact.clear()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._managed_identity is not None:
            await self._managed_identity.close()


class ManagementCredentials(Protocol):
    """What the Graph adapter asks of an identity: the credential that manages apps in a tenant, and whether that
    credential is kept (so the client built on it is worth keeping too)."""

    tenant_cache_size: int

    def management_credential(self, tenant_id: str) -> AsyncTokenCredential: ...

    def keeps(self, tenant_id: str, credential: AsyncTokenCredential) -> bool: ...


class HomeApps:
    """The managed identity in the home tenant, for the apps this service keeps there for itself: the federated
    type's connector apps (shared/usecases/connector.py), and nothing in any other tenant.

    ALLOW_HOME_TENANT keeps callers' registrations, apps granted application permissions over the vendor's own
    directory, out of the home tenant when this deployment onboards customers. A connector is not one: this
    service creates it, it holds no credential, and it is granted nothing at home (no service principal there;
    each customer's admin consents to it in their own tenant). So it is managed at home whatever that setting
    says, through this narrower door rather than by opening the wide one."""

    tenant_cache_size = 1

    def __init__(self, identity: Identity, settings: Settings) -> None:
        self._identity = identity
        self._home = settings.home_tenant_id

    def management_credential(self, tenant_id: str) -> AsyncTokenCredential:
        if tenant_id != self._home:
            raise TenantNotAllowed("Connector apps live only in this service's home tenant.", tenantId=tenant_id)
        return self._identity.managed_credential()

    def keeps(self, tenant_id: str, credential: AsyncTokenCredential) -> bool:
        return tenant_id == self._home and credential is self._identity.managed_credential()


class TenantClients(Generic[C]):
    """One client per tenant whose credential the identity keeps, built on that credential (and so on its token
    cache), least recently used out once there are as many as it keeps credentials: a client is worth keeping
    while its credential, and its tokens, are. A tenant that has not answered yet (or was evicted) gets a client
    for that call only. The clients share their caller's transport, so dropping one closes nothing."""

    def __init__(self, identity: ManagementCredentials, build: Callable[[AsyncTokenCredential, str], C]) -> None:
        self._identity = identity
        self._build = build
        self._kept: OrderedDict[str, tuple[AsyncTokenCredential, C]] = OrderedDict()

    def get(self, tenant_id: str) -> C:
        credential = self._identity.management_credential(tenant_id)
        kept = self._kept.get(tenant_id)
        if kept is not None and kept[0] is credential:
            self._kept.move_to_end(tenant_id)
            return kept[1]
        client = self._build(credential, tenant_id)
        if self._identity.keeps(tenant_id, credential):
            self._kept[tenant_id] = (credential, client)
            self._kept.move_to_end(tenant_id)
            while len(self._kept) > self._identity.tenant_cache_size:
                self._kept.popitem(last=False)
        else:
            self._kept.pop(tenant_id, None)
        return client

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        self._kept.clear()
