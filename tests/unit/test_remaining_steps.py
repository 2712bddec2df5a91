"""An add-on's remaining step: seen done by the roles in the app's own token, and never the reason an onboarding
fails."""

from __future__ import annotations

import logging

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.errors import UpstreamError
from shared.domain.model import AppRegistration, ClientCredential, IntegrationProfile, Secret
from shared.domain.ports import NotReplicatedYet
from shared.usecases.remaining_steps import check_steps, remaining_steps

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
EVERY_SERVICE_PRINCIPAL = "0997a1d0-0d1d-4acb-b408-d5ca73121e90"  # in a recorded app token beside assigned roles
SECRET = Secret("not-a-real-secret")
CONTEXT = {"tenantId": "t", "integration": "m365-defender"}


class Roles:
    """A checker whose app tokens carry `held` in `wids`, or whose sign-in fails with `failure`."""

    def __init__(self, held: set[str] | None = None, failure: Exception | None = None) -> None:
        self.held, self.failure, self.asked = held or set(), failure, 0

    async def granted_roles(self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str) -> set[str]:
        raise AssertionError("not asked for")

    async def directory_roles(
        self, tenant_id: str, client_id: str, credential: ClientCredential, scope: str
    ) -> set[str]:
        self.asked += 1
        if self.failure is not None:
            raise self.failure
        return set(self.held)


def with_exchange() -> IntegrationProfile:
    profile = load_catalog().require("m365-defender").with_add_ons(["exchange", "defender-xdr"])
    return profile


async def check(
    checker: Roles, recorded: frozenset[str], credential: ClientCredential | None = SECRET
) -> frozenset[str]:
    return await check_steps(checker, GRAPH_SCOPE, "t", with_exchange(), "client", credential, recorded, CONTEXT)


async def test_a_step_is_done_while_the_apps_token_holds_a_role_its_add_on_names() -> None:
    assert await check(Roles({EXCHANGE_ADMINISTRATOR, EVERY_SERVICE_PRINCIPAL}), frozenset()) == {"exchange"}
    assert await check(Roles({EVERY_SERVICE_PRINCIPAL}), frozenset({"exchange"})) == frozenset()
    assert await check(Roles(), frozenset({"exchange"})) == frozenset(), "no wids claim: no role"


@pytest.mark.parametrize(
    "failure",
    [NotReplicatedYet("the credential", "AADSTS7000215"), UpstreamError("refused", "entra", 401, "AADSTS7000222")],
)
async def test_a_failed_sign_in_keeps_what_was_recorded_and_fails_nothing(failure: Exception) -> None:
    assert await check(Roles(failure=failure), frozenset({"exchange"})) == {"exchange"}
    assert await check(Roles(failure=failure), frozenset()) == frozenset()


async def test_without_a_credential_nothing_is_asked_and_the_record_stands() -> None:
    checker = Roles({EXCHANGE_ADMINISTRATOR})
    assert await check(checker, frozenset({"exchange"}), credential=None) == {"exchange"}
    assert checker.asked == 0


async def test_a_connection_without_a_confirmable_step_never_signs_in() -> None:
    checker = Roles({EXCHANGE_ADMINISTRATOR})
    profile = load_catalog().require("m365-defender").with_add_ons(["defender-xdr"])
    done = await check_steps(checker, GRAPH_SCOPE, "t", profile, "c", SECRET, frozenset({"exchange"}), CONTEXT)
    assert done == frozenset() and checker.asked == 0, "an add-on no longer chosen is not done either"


async def test_done_and_reopened_are_audited_once_each(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        await check(Roles({EXCHANGE_ADMINISTRATOR}), frozenset())
        await check(Roles({EXCHANGE_ADMINISTRATOR}), frozenset({"exchange"}))
        await check(Roles(), frozenset({"exchange"}))
    events = [r.__dict__["audit"] for r in caplog.records if r.name == "tenant_onboarding.audit"]
    assert [(e["operation"], e.get("directoryRoles")) for e in events] == [
        ("step.done", "Exchange Administrator"),
        ("step.reopened", None),
    ]


def test_the_remaining_steps_leave_out_those_done_and_fill_in_the_ids() -> None:
    app = AppRegistration("object", "the-client-id", "unique", "Name", frozenset(), ())
    [step] = remaining_steps(with_exchange(), "the-tenant", app, "the-sp")
    assert "the-client-id" in step and "the-sp" in step and "{" not in step
    assert remaining_steps(with_exchange(), "the-tenant", app, "the-sp", frozenset({"exchange"})) == []
    assert remaining_steps(with_exchange(), "the-tenant", None, None) == [], "no app yet: nothing to do"
