"""The proof of a new secret (`Credentials.prove`): a token that works is not enough, it must hold every role."""

from __future__ import annotations

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.model import ClientCredential, IntegrationProfile, Secret
from shared.usecases.credentials import Credentials
from shared.usecases.replication import StillReplicating
from tests.fakes import TENANT, FakeClock, FakeDirectory, FakeVault, make_settings

CLIENT_ID = "00000000-0000-4000-8000-0000000000c1"
TWO_RESOURCES = "sentinel"  # Log Analytics and Microsoft Graph: one token per resource API


class TokenRoles:
    """A checker whose tokens carry the given roles per scope, always (a grant that never replicates)."""

    def __init__(self, roles: dict[str, set[str]]) -> None:
        self.roles = roles
        self.asked: list[str] = []

    async def granted_roles(self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        self.asked.append(scope)
        return set(self.roles[scope])

    async def directory_roles(
        self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str
    ) -> set[str]:
        return set()


def profile(integration: str) -> IntegrationProfile:
    found = load_catalog().get(integration)
    assert found is not None
    return found


def credentials(checker: TokenRoles, clock: FakeClock) -> Credentials:
    catalog = load_catalog()
    settings = make_settings(VERIFY_TIMEOUT_SECONDS=5)
    return Credentials(settings, FakeDirectory(catalog, clock.now), FakeVault(), checker, clock, clock.now)


def every_role(p: IntegrationProfile) -> dict[str, set[str]]:
    return {permission.token_scope: set(permission.roles) for permission in p.permissions}


async def test_a_token_holding_every_profile_role_is_proof() -> None:
    p = profile(TWO_RESOURCES)
    checker = TokenRoles(every_role(p))

    await credentials(checker, FakeClock()).prove(TENANT, CLIENT_ID, Secret("a-secret"), p)

    assert set(checker.asked) == set(every_role(p))  # a token for each resource API


@pytest.mark.parametrize("integration", ["sentinel", "m365-defender"])
async def test_a_token_missing_one_profile_role_is_not_proof(integration: str) -> None:
    p = profile(integration)
    for scope, roles in every_role(p).items():
        for missing in sorted(roles):
            held = every_role(p) | {scope: roles - {missing}}
            clock = FakeClock()
            checker = TokenRoles(held)

            with pytest.raises(StillReplicating):
                await credentials(checker, clock).prove(TENANT, CLIENT_ID, Secret("a-secret"), p)

            assert checker.asked.count(scope) > 1, f"without {missing} the proof waits and asks again"
