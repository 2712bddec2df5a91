"""The proof through the registered functions: a new secret is verified, and the ids written, only once a
token obtained with it works and holds every role of the profile, however long Entra takes to replicate."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.azurite import Azurite
from tests.functions.conftest import Api, app_environment, body_of, serving
from tests.functions.test_http_api import token_roles

LAG_MS = 6000  # well beyond the second the product waits for a proof in one PUT, even on a slow runner
VERIFY_TIMEOUT_SECONDS = "1"
ATTEMPTS = 30
INTEGRATION = "sentinel"  # two resource APIs: a token for each must hold its roles


@pytest.fixture
async def proving(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Api]:
    """Services that give up waiting for a proof after a second, so a lagging directory means 202."""
    app_environment(monkeypatch, stand_in, "v", azurite, VERIFY_TIMEOUT_SECONDS=VERIFY_TIMEOUT_SECONDS)
    async with serving(stand_in) as served:
        yield served


def stored(api: Api, tenant: str) -> dict[str, dict[str, Any]]:
    """The latest version of each of the registration's secrets in the stand-in's vault, by kind."""
    prefix = f"{api.services.settings.name_prefix}-{tenant}-{INTEGRATION}-"
    secrets = api.stand_in.state()["vault"]["secrets"]
    return {name.removeprefix(prefix): s["versions"][-1] for name, s in secrets.items() if name.startswith(prefix)}


def profile_roles(api: Api) -> dict[str, set[str]]:
    profile = api.services.catalog.get(INTEGRATION)
    assert profile is not None
    return {p.token_scope: set(p.roles) for p in profile.permissions}


async def put_until_done(api: Api, tenant: str) -> list[int]:
    """PUT as a caller would, again after each 202; every 202 must leave the secret unverified and no ids."""
    answers: list[int] = []
    for _ in range(ATTEMPTS):
        response = await api.put(tenant, INTEGRATION)
        answers.append(response.status_code)
        if response.status_code != 202:
            return answers
        assert response.headers.get("Retry-After"), "a 202 says when to come back"
        body = body_of(response)
        assert body["credential"]["verified"] is False, body["credential"]
        held = stored(api, tenant)
        assert held["client-secret"]["tags"]["verified"] == "false", "tagged verified before it was proven"
        assert "client-id" not in held and "tenant-id" not in held, "ids written before the secret was proven"
    pytest.fail(f"still 202 after {ATTEMPTS} PUTs: {answers}")


def value(api: Api, tenant: str, kind: str) -> str:
    """A stored value, read as a downstream consumer would (with the vault's own SDK)."""
    client = SecretClient(
        api.stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    with client:
        text = client.get_secret(f"{api.services.settings.name_prefix}-{tenant}-{INTEGRATION}-{kind}").value
    assert text
    return text


def assert_proven_and_complete(api: Api, tenant: str) -> None:
    assert stored(api, tenant)["client-secret"]["tags"]["verified"] == "true"
    [app] = api.apps()
    assert value(api, tenant, "client-id") == app["appId"]
    assert value(api, tenant, "tenant-id") == tenant
    secret = value(api, tenant, "client-secret")
    for scope, roles in profile_roles(api).items():
        assert roles <= token_roles(api, tenant, app["appId"], secret, scope), f"{scope}: the proof was wrong"


async def test_a_new_secret_still_replicating_answers_202_until_it_works_and_only_then_is_verified(
    proving: Api,
) -> None:
    api, tenant = proving, proving.stand_in.home_tenant_id
    api.stand_in.set_faults(password=LAG_MS)

    answers = await put_until_done(api, tenant)

    assert answers[0] == 202, f"the first PUT cannot have proven a secret Entra does not know yet: {answers}"
    assert answers[-1] in (200, 201), answers
    assert_proven_and_complete(api, tenant)


async def test_a_token_without_the_granted_roles_is_not_proof(proving: Api) -> None:
    # The secret works at once, but the grants replicate late: its tokens carry no roles for a while.
    api, tenant = proving, proving.stand_in.home_tenant_id
    api.stand_in.set_faults(appRoleAssignment=LAG_MS)

    answers = await put_until_done(api, tenant)

    assert answers[0] == 202, f"a token without the roles was taken as proof: {answers}"
    assert answers[-1] in (200, 201), answers
    assert_proven_and_complete(api, tenant)
