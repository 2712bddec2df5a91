"""The token this service asks for itself (Graph, Azure Resource Manager), with Entra's refusal told as the project's error."""

from __future__ import annotations

from typing import Any

from azure.core.credentials import AccessToken
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import ClientAuthenticationError

from shared.adapters.entra_answers import token_refusal


class ServiceToken(AsyncTokenCredential):
    """A credential whose token refusals become the project's errors.

    The SDKs fetch the token inside the request (kiota for Graph, azure-core's bearer token policy for ARM),
    so a ClientAuthenticationError there would pass every failure handler that reads the service's answers
    and reach the caller as a 500. A transient refusal (429, 5xx, AADSTS90033/50196, after azure-identity's
    own retries) becomes UpstreamUnavailable, which callers answer with Retry-After; any other, UpstreamError
    naming the code. The credential itself stays the Identity's: this wrapper never closes it."""

    def __init__(self, credential: AsyncTokenCredential, tenant_id: str, what: str) -> None:
        self._credential = credential
        self._tenant_id = tenant_id
        self._what = what

    async def get_token(
        self, *scopes: str, claims: str | None = None, tenant_id: str | None = None, enable_cae: bool = False,
        **kwargs: Any,
    ) -> AccessToken:  # fmt: skip
        try:
            return await self._credential.get_token(
                *scopes, claims=claims, tenant_id=tenant_id, enable_cae=enable_cae, **kwargs
            )
        except ClientAuthenticationError as error:
            raise token_refusal(error, self._tenant_id, self._what) from error

    async def close(self) -> None:
        return None

    async def __aexit__(self, *args: object) -> None:
        return None
