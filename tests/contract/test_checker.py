"""The CredentialChecker contract: a new secret's token carries the roles granted to its app (once Entra has
replicated the secret), and a secret Entra does not know is refused the same way in both worlds."""

from __future__ import annotations

import uuid

import pytest

from shared.domain.model import AppRegistration, NewPassword, Secret
from shared.domain.ports import NotReplicatedYet
from tests.contract.conftest import GRAPH_SCOPE, ROLE_VALUES, Ports, graph_api, in_days

# https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"


async def granted_app(ports: Ports, values: tuple[str, ...]) -> AppRegistration:
    """An app with its service principal, granted these Graph roles."""
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Proven"))
    principal, _ = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    graph = await graph_api(ports)
    result = await ports.directory.grant(
        ports.tenant_id, principal, [(graph.object_id, graph.roles_by_value[v]) for v in values]
    )
    assert result.pending == ()
    return app


async def mint(ports: Ports, app: AppRegistration) -> NewPassword:
    return await ports.directory.add_password(ports.tenant_id, app.object_id, "proof", in_days(1))


async def test_a_new_secrets_token_has_the_granted_roles_once_the_secret_has_replicated(ports: Ports) -> None:
    app = await granted_app(ports, ROLE_VALUES)
    ports.lag("password")
    new = await mint(ports, app)

    with pytest.raises(NotReplicatedYet):
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE)

    await ports.settle()
    assert await ports.checker.granted_roles(ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE) == set(ROLE_VALUES)


async def test_an_apps_token_names_the_directory_roles_it_holds(ports: Ports) -> None:
    """Template ids, lower-cased; none before the admin assigns one (the claim absent or holding other ids)."""
    app = await granted_app(ports, ROLE_VALUES)
    new = await mint(ports, app)
    assert EXCHANGE_ADMINISTRATOR not in await ports.checker.directory_roles(
        ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE
    )

    ports.assign_directory_role(app.app_id, EXCHANGE_ADMINISTRATOR)
    assert EXCHANGE_ADMINISTRATOR in await ports.checker.directory_roles(
        ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE
    )
    with pytest.raises(NotReplicatedYet):  # the same sign-in as the proof: a secret Entra does not know is refused
        await ports.checker.directory_roles(ports.tenant_id, app.app_id, Secret("not-this-apps"), GRAPH_SCOPE)


async def test_a_token_shows_a_revoked_role_gone(ports: Ports) -> None:
    app = await granted_app(ports, ROLE_VALUES)
    new = await mint(ports, app)
    principal = await ports.directory.find_service_principal(ports.tenant_id, app.app_id)
    assert principal is not None
    graph = await graph_api(ports)
    (revoked,) = [
        a for a in await ports.directory.assignments(ports.tenant_id, principal)
        if a.app_role_id == graph.roles_by_value[ROLE_VALUES[0]]
    ]  # fmt: skip
    assert await ports.directory.revoke(ports.tenant_id, revoked.resource_object_id, revoked.id)

    assert await ports.checker.granted_roles(ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE) == {ROLE_VALUES[1]}


async def test_a_wrong_secret_is_refused_as_entra_refuses_a_secret_it_does_not_know_yet(ports: Ports) -> None:
    """Entra answers AADSTS7000215 ("invalid client secret") both to a wrong secret and to a right one that has
    not replicated, so the port cannot tell them apart: both are NotReplicatedYet, and the use case's patience
    (REPLICATION_TIMEOUT_SECONDS) decides when to give up."""
    app = await granted_app(ports, ROLE_VALUES[:1])
    new = await mint(ports, app)

    with pytest.raises(NotReplicatedYet) as wrong:
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, Secret("not-a-secret-of-this-app"), GRAPH_SCOPE)
    assert wrong.value.code == "AADSTS7000215"

    assert await ports.directory.remove_password(ports.tenant_id, app.object_id, new.info.key_id)
    with pytest.raises(NotReplicatedYet) as removed:
        await ports.checker.granted_roles(ports.tenant_id, app.app_id, new.secret, GRAPH_SCOPE)
    assert removed.value.code == "AADSTS7000215"
    with pytest.raises(NotReplicatedYet) as unknown:  # an app Entra does not know (yet)
        await ports.checker.granted_roles(ports.tenant_id, str(uuid.uuid4()), new.secret, GRAPH_SCOPE)
    assert unknown.value.code == "AADSTS700016"
