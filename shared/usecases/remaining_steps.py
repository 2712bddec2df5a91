"""The steps an add-on leaves to the customer's admin (an Exchange role for the app): which remain, and which the
app's own token shows done."""

from __future__ import annotations

import logging

from shared.domain.audit import audit
from shared.domain.catalog import PLACEHOLDERS
from shared.domain.errors import UpstreamError, UpstreamUnavailable
from shared.domain.model import AddOn, AppRegistration, ClientCredential, IntegrationProfile, StoredSecret
from shared.domain.ports import CredentialChecker, NotReplicatedYet
from shared.domain.registry import Tag

logger = logging.getLogger(__name__)


def recorded_steps_done(ids: StoredSecret | None) -> frozenset[str]:
    """The add-ons whose step the Client ID record says was last seen done."""
    tag = ids.tags.get(Tag.STEPS_DONE, "") if ids is not None else ""
    return frozenset(part for part in tag.split(",") if part)


def steps_tag(done: frozenset[str]) -> dict[str, str]:
    """The Client ID's tag for `done` (no tag when none is)."""
    return {Tag.STEPS_DONE: ",".join(sorted(done))} if done else {}


def confirmable_add_ons(profile: IntegrationProfile) -> list[AddOn]:
    """The chosen add-ons whose remaining step a role in the app's token shows done."""
    return [a for a in (profile.add_on(i) for i in profile.chosen) if a is not None and a.step_done_with]


def remaining_steps(
    profile: IntegrationProfile,
    tenant: str,
    app: AppRegistration | None,
    sp_id: str | None,
    done: frozenset[str] = frozenset(),
) -> list[str]:
    """The chosen add-ons' steps not seen done, with this registration's ids in them (none before its app exists)."""
    if app is None:
        return []
    ids = {"appId": app.app_id, "servicePrincipalId": sp_id or "(its service principal)", "tenantId": tenant}
    steps = []
    for add_on_id in profile.chosen:
        add_on = profile.add_on(add_on_id)
        if add_on is not None and add_on.remaining_step and add_on_id not in done:
            steps.append(PLACEHOLDERS.sub(lambda m: ids.get(m.group(1), m.group(0)), add_on.remaining_step))
    return steps


async def check_steps(
    checker: CredentialChecker,
    scope: str,
    tenant: str,
    profile: IntegrationProfile,
    client_id: str,
    credential: ClientCredential | None,
    recorded: frozenset[str],
    context: dict[str, str],
) -> frozenset[str]:
    """Which of the chosen add-ons' steps are done, by the Entra roles in a fresh token of the app's own (`scope`):
    a step is done while the app holds one of the roles its add-on names. Without a credential to sign in with
    (a vendor's certificate, no proof sent), or when the sign-in fails, what was recorded stands: this check only
    informs, it never fails the onboarding it runs in."""
    confirmable = confirmable_add_ons(profile)
    if not confirmable:
        return frozenset()
    still_chosen = recorded & {a.id for a in confirmable}
    if credential is None:
        return still_chosen
    try:
        held = await checker.directory_roles(tenant, client_id, credential, scope)
    except (NotReplicatedYet, UpstreamError, UpstreamUnavailable) as error:
        logger.info("Could not read the app's directory roles in tenant %s: %s", tenant, type(error).__name__)
        return still_chosen
    done = set()
    for add_on in confirmable:
        seen = sorted(r.display_name for r in add_on.step_done_with if r.template_id in held)
        if seen:
            done.add(add_on.id)
            if add_on.id not in recorded:
                audit("step.done", context, addOn=add_on.id, clientId=client_id, directoryRoles=",".join(seen))
        elif add_on.id in recorded:
            audit("step.reopened", context, addOn=add_on.id, clientId=client_id)
    return frozenset(done)
