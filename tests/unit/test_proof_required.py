"""A new secret counts as proven only by a token that holds every granted role (issue 21's mutants:
the proof removed, the proof ignoring the token's roles, the ids written before the proof)."""

from __future__ import annotations

from shared.domain.model import ClientCredential, SecretKind
from shared.entrypoints.presenters import registration_json
from shared.usecases.onboarding import OnboardRequest, Outcome
from tests.fakes import TENANT, make_onboarding

M365 = "m365-defender"
REQUEST = OnboardRequest(TENANT, M365)


async def test_a_token_missing_one_granted_role_leaves_the_secret_unverified_and_no_ids_stored() -> None:
    h = make_onboarding(VERIFY_TIMEOUT_SECONDS=5)
    real = h.checker.granted_roles
    asked: list[str] = []

    async def one_role_short(tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        roles = await real(tenant_id, client_id, credential, scope)
        asked.append(scope)
        return set(sorted(roles)[1:])  # Entra answered with a token, but one granted role is not in it

    h.checker.granted_roles = one_role_short  # type: ignore[method-assign]

    pending = await h.onboarding.onboard(REQUEST)

    assert asked, "the new secret was never used to ask for a token"
    assert pending.outcome is Outcome.PENDING
    assert registration_json(pending.registration)["credential"]["verified"] is False
    stored = h.vault.latest(h.onboarding.registry.secret_name(TENANT, M365, SecretKind.CLIENT_SECRET))
    assert stored is not None and stored.tags["verified"] == "false"
    for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID):
        assert h.vault.latest(h.onboarding.registry.secret_name(TENANT, M365, kind)) is None, kind

    h.checker.granted_roles = real  # type: ignore[method-assign]
    done = await h.onboarding.onboard(REQUEST)

    assert done.outcome is Outcome.UPDATED
    assert registration_json(done.registration)["credential"]["verified"] is True
    assert stored.tags["verified"] == "true"
    for kind in (SecretKind.CLIENT_ID, SecretKind.TENANT_ID):
        assert h.vault.latest(h.onboarding.registry.secret_name(TENANT, M365, kind)) is not None, kind
