"""A token refused inside a Graph request, or read beside one, is the project's error, not an untranslated
azure-identity exception."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared.adapters.graph import GraphDirectory
from shared.adapters.graph_client import GraphToken
from shared.adapters.identity import Identity
from shared.domain.errors import UpstreamError, UpstreamUnavailable
from shared.settings import load_settings

TENANT = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"


class Refusing:
    def __init__(self, message: str) -> None:
        self.message = message
        self.closed = False

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError(message=self.message)

    async def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("(temporarily_unavailable) AADSTS90033: A transient error has occurred.", UpstreamUnavailable),
        ("(temporarily_unavailable) AADSTS50196: The server is busy.", UpstreamUnavailable),
        ("(unauthorized_client) AADSTS700016: Application not found in the directory.", UpstreamError),
    ],
    ids=["transient", "busy", "refused"],
)
async def test_a_refused_graph_token_is_an_upstream_error_and_a_transient_one_asks_to_retry(
    message: str, expected: type[Exception]
) -> None:
    credential = Refusing(message)
    with pytest.raises(expected) as raised:
        await GraphToken(credential, TENANT).get_token("https://graph.microsoft.com/.default")  # type: ignore[arg-type]
    error = raised.value
    assert (
        type(error) is expected and isinstance(error, UpstreamError) and error.extensions["upstreamService"] == "entra"
    )
    await GraphToken(credential, TENANT).close()  # type: ignore[arg-type]
    assert not credential.closed, "the Identity owns the credential"


SETTINGS = load_settings({"KEY_VAULT_URL": "https://kv-example.vault.azure.net", "HOME_TENANT_ID": TENANT})
TRANSIENT = "(temporarily_unavailable) AADSTS90033: A transient error has occurred."


class RefusingIdentity:
    """An identity whose every token request Entra refuses (the ManagementCredentials the Graph adapter reads)."""

    tenant_cache_size = 1

    def __init__(self, message: str) -> None:
        self.credential = Refusing(message)

    def management_credential(self, tenant_id: str) -> Refusing:
        return self.credential

    def keeps(self, tenant_id: str, credential: object) -> bool:
        return False


async def test_the_token_read_for_the_callers_own_object_id_is_translated_too() -> None:
    """caller_object_id reads the token Graph is called with, outside any Graph request: a transient refusal there
    asks to retry like any other, instead of escaping as azure-identity's exception (a 500, an unhandled sweep)."""
    directory = GraphDirectory(SETTINGS, RefusingIdentity(TRANSIENT))  # type: ignore[arg-type]
    with pytest.raises(UpstreamUnavailable):
        await directory.caller_object_id(TENANT)


async def test_the_managed_identitys_token_for_a_connector_proof_is_translated_too() -> None:
    """The assertion a connector's token request carries is the managed identity's token: refused, it is the
    project's error (transient: retry), and so is a transient refusal of the connector's own token request."""
    identity = Identity(SETTINGS)
    identity._managed_identity = Refusing(TRANSIENT)  # type: ignore[assignment]
    with pytest.raises(UpstreamUnavailable):
        await identity.roles(TENANT, "00000000-0000-0000-0000-0000000000c1", "https://graph.microsoft.com/.default")
    with pytest.raises(UpstreamUnavailable):
        await identity.own_identity()
