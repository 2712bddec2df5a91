"""A certificate registration in one tenant: onboarded with a certificate Key Vault creates, used by a consumer
through its reference, rotated on demand with both working through the grace period, offboarded.

Runs after test_one_tenant.py (file order) on the same integration and tenant, once that module's
registration is offboarded; any one test also runs alone (`-k certificate`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.live.target import REFERENCE, Consumer, Target, World, token_scopes

CERTIFICATE = {"credentialType": "certificate"}


@pytest.fixture(scope="module")
async def certificate(target: Target, world: World) -> AsyncIterator[dict[str, Any]]:
    answers = await target.onboard(world.tenant, world.integration, CERTIFICATE)
    assert answers[-1].status in (200, 201), str(answers[-1])
    yield answers[-1].body
    assert not await target.cleanup([(world.tenant, world.integration)])


def consumer_of(world: World) -> Consumer:
    if world.consumer is None:
        pytest.skip("reading a stored certificate needs the vault: run this check with LIVE_TARGET=in-process")
    return world.consumer


async def test_the_certificate_is_proven_and_a_consumer_gets_a_token_with_the_profiles_roles_through_its_reference(
    certificate: dict[str, Any], target: Target, world: World
) -> None:
    credential, references = certificate["credential"], certificate["keyVaultReferences"]
    assert credential["type"] == "certificate" and credential["verified"] is True and credential["thumbprint"]
    assert references["clientSecret"] is None and REFERENCE.fullmatch(references["clientCertificate"])
    consumer = consumer_of(world)
    client_id, _ = consumer.read(references["clientId"])
    pkcs12, _ = consumer.read(references["clientCertificate"])
    scopes = token_scopes()
    for resource, roles in (await target.catalog_roles(world.integration)).items():
        claims = consumer.certificate_claims(
            world.tenant, client_id, pkcs12, scopes.get(resource, f"{resource}/.default")
        )
        assert claims is not None, f"Entra refused the stored certificate for {resource}"
        assert claims["tid"] == world.tenant and set(claims["roles"]) == roles
    assert not any(pkcs12[:64] in answer.text for answer in target.answers), "key material in an answer"


async def test_rotating_the_certificate_keeps_its_reference_and_the_old_one_through_the_grace_period(
    certificate: dict[str, Any], target: Target, world: World
) -> None:
    consumer = consumer_of(world)
    references = certificate["keyVaultReferences"]
    client_id, _ = consumer.read(references["clientId"])
    before, _ = consumer.read(references["clientCertificate"])

    rotated = await target.rotate(world.tenant, world.integration)

    assert rotated.status == 200 and rotated.body["action"] == "rotated", str(rotated)
    after, _ = consumer.read(references["clientCertificate"])
    assert after != before
    [resource, *_] = await target.catalog_roles(world.integration)
    scope = token_scopes().get(resource, f"{resource}/.default")
    assert consumer.certificate_claims(world.tenant, client_id, after, scope) is not None
    assert consumer.certificate_claims(world.tenant, client_id, before, scope) is not None, "cut off in its grace"


async def test_offboarding_deletes_the_certificate(certificate: dict[str, Any], target: Target, world: World) -> None:
    answer = await target.delete(world.tenant, world.integration)
    assert answer.status == 200, str(answer)
    assert set(answer.body["certificates"].values()) <= {"deleted", "purged"} and answer.body["certificates"]
