"""The stand-in posing as a national cloud (`--cloud`): its issuers, the audiences each of its services accepts, and
the resource apps its tenants hold, as emulator/FIDELITY.md rows C1-C6 source them."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest

from emulator.launcher import StandIn, start_stand_in


@pytest.fixture(scope="module", params=["AzureUSGovernment", "AzureChinaCloud"])
def national(request: pytest.FixtureRequest) -> Iterator[StandIn]:
    instance = start_stand_in("--cloud", request.param)
    try:
        yield instance
    finally:
        instance.stop()


def identity_token(stand_in: StandIn, resource: str) -> httpx.Response:
    """The App Service managed identity protocol, as azure-identity speaks it."""
    return httpx.get(
        stand_in.info["identity_endpoint"],
        params={"api-version": "2019-08-01", "resource": resource},
        headers={"X-IDENTITY-HEADER": stand_in.info["identity_header"]},
    )


def https(stand_in: StandIn) -> httpx.Client:
    return httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_bundle))


def claims(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    decoded: dict[str, Any] = jwt.decode(response.json()["access_token"], options={"verify_signature": False})
    return decoded


EXPECTED = {
    "AzureUSGovernment": {
        "v1": "https://sts.windows.net",
        "v2": "https://login.microsoftonline.us",
        "graph": "https://graph.microsoft.us",
        "vault": "https://vault.usgovcloudapi.net",
        "exchange": "api://AzureADTokenExchangeUSGov",
        "absent": [],
    },
    "AzureChinaCloud": {
        "v1": "https://sts.chinacloudapi.cn",
        "v2": "https://login.partner.microsoftonline.cn",
        "graph": "https://microsoftgraph.chinacloudapi.cn",
        "vault": "https://vault.azure.cn",
        "exchange": "api://AzureADTokenExchangeChina",
        "absent": ["fc780465-2017-40d4-a0c5-307022471b92", "https://api.securitycenter.microsoft.com"],
    },
}


def test_tokens_carry_the_clouds_issuers(national: StandIn) -> None:
    expected = EXPECTED[national.info["cloud"]]
    tenant = national.home_tenant_id
    assert claims(identity_token(national, str(expected["graph"])))["iss"] == f"{expected['v1']}/{tenant}/"
    exchange = claims(identity_token(national, str(expected["exchange"])))
    assert exchange["iss"] == f"{expected['v2']}/{tenant}/v2.0" and exchange["aud"] == expected["exchange"]
    with https(national) as client:
        discovery = client.get(f"{national.authority}/{tenant}/v2.0/.well-known/openid-configuration").json()
    assert discovery["issuer"] == f"{expected['v2']}/{tenant}/v2.0"


def test_another_clouds_audiences_are_refused(national: StandIn) -> None:
    expected = EXPECTED[national.info["cloud"]]
    # The public cloud's token exchange audience and Graph are not resources of this cloud's tenants.
    for resource in ("api://AzureADTokenExchange", "https://graph.microsoft.com", *expected["absent"]):
        refused = identity_token(national, str(resource))
        assert refused.status_code == 400 and "not found" in refused.text, resource
    # A token this cloud's Entra issues for the public Key Vault is refused by this cloud's vault, whose challenge
    # names its own resource.
    with https(national) as client:
        challenge = client.get(f"{national.vault_url}/secrets/x", params={"api-version": "7.4"})
        assert challenge.status_code == 401
        assert f'resource="{expected["vault"]}"' in challenge.headers["www-authenticate"]
        own = identity_token(national, str(expected["vault"])).json()["access_token"]
        found = client.get(
            f"{national.vault_url}/secrets/x", params={"api-version": "7.4"}, headers={"Authorization": f"Bearer {own}"}
        )
        assert found.status_code == 404  # authenticated: no such secret
        graph = identity_token(national, str(expected["graph"])).json()["access_token"]
        wrong = client.get(
            f"{national.vault_url}/secrets/x",
            params={"api-version": "7.4"},
            headers={"Authorization": f"Bearer {graph}"},
        )
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "Unauthorized"
