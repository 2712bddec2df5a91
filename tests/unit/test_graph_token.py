"""A token refused inside a Graph request is the project's error, not an untranslated azure-identity exception."""

from __future__ import annotations

from typing import Any

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from shared.adapters.graph_client import GraphToken
from shared.domain.errors import UpstreamError, UpstreamUnavailable

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
