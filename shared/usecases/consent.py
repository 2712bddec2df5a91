"""Admin consent as the catalog says it should be: the profile's roles resolved in a tenant, and nothing beyond.

Onboarding and rotation both converge a registration's grants to its profile: what is missing is
granted (onboarding does that, batched, while a new service principal replicates), and what the
service principal holds beyond the profile is revoked, each with an audit event. That includes a
role a customer's admin granted by hand: the vendor's credential carries exactly the permissions
the catalog reviewed for it, so a role nobody reviewed is taken back on the next PUT or rotation
(GET reports it as drift until then). Removing a role from a profile therefore takes it back from
every registration as it is next converged.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.domain.audit import audit
from shared.domain.errors import PermissionNotOffered, ResourceApiMissing
from shared.domain.model import Assignment, IntegrationProfile, ResourceApi
from shared.domain.ports import Directory, NotReplicatedYet, Throttled
from shared.domain.retry import Clock
from shared.usecases.replication import within_replication

Grant = tuple[str, str]  # (resource service principal object id, app role id)


async def resolve(directory: Directory, tenant: str, profile: IntegrationProfile) -> dict[str, ResourceApi]:
    """The profile's resource APIs in the tenant, each offering every role the profile names, by the id the
    catalog reviewed; a named error (and nothing written) otherwise."""
    found = await asyncio.gather(*(directory.resource_api(tenant, p.resource_app_id) for p in profile.permissions))
    apis: dict[str, ResourceApi] = {}
    for permissions, api in zip(profile.permissions, found, strict=True):
        if api is None:
            raise ResourceApiMissing(
                f"The tenant has no service principal for {permissions.resource_name}; the product that provides "
                "it may not be licensed or enabled there.",
                tenantId=tenant,
                integration=profile.id,
                resourceAppId=permissions.resource_app_id,
            )
        missing = [role for role in permissions.roles if role not in api.roles_by_value]
        if missing:
            raise PermissionNotOffered(
                f"{permissions.resource_name} in this tenant does not offer {', '.join(missing)}.",
                tenantId=tenant,
                integration=profile.id,
                resourceAppId=permissions.resource_app_id,
            )
        # The catalog reviewed each role by id as well as by value: a resource offering the value under
        # another id is not the permission anyone reviewed, so nothing is granted.
        unreviewed = [
            role
            for role in permissions.roles
            if api.roles_by_value[role].lower() != permissions.role_ids.get(role, "").lower()
        ]
        if unreviewed:
            raise PermissionNotOffered(
                f"{permissions.resource_name} in this tenant offers {', '.join(unreviewed)} under an app role "
                "id the catalog did not review; nothing was granted.",
                tenantId=tenant,
                integration=profile.id,
                resourceAppId=permissions.resource_app_id,
            )
        apis[permissions.resource_app_id] = api
    return apis


def wanted_grants(profile: IntegrationProfile, apis: dict[str, ResourceApi]) -> set[Grant]:
    return {
        (apis[p.resource_app_id].object_id, apis[p.resource_app_id].roles_by_value[role])
        for p in profile.permissions
        for role in p.roles
    }


@dataclass
class Tally:
    """What converging changed; kept by the caller, so it counts what happened before a pending step too."""

    granted: int = 0
    revoked: int = 0


async def converge(
    directory: Directory,
    tenant: str,
    principal_id: str,
    wanted: set[Grant],
    context: dict[str, str],
    *,
    principal_is_new: bool,
    deadline_seconds: float,
    clock: Clock,
    tally: Tally,
) -> set[Grant]:
    """Make the principal hold exactly `wanted`: revoke what it holds beyond, grant what it lacks, waiting out
    replication for up to `deadline_seconds` (StillReplicating after that). What it now holds.

    A principal created by this call has no grants yet: nothing to read or revoke, and no need to wait
    for it to replicate before reading (the grants themselves wait for it, one at a time: GrantLoop)."""
    held: set[Grant] = set()
    if not principal_is_new:
        found = await within_replication(
            "service principal", lambda: directory.assignments(tenant, principal_id),
            deadline_seconds=deadline_seconds, clock=clock,
        )  # fmt: skip
        revoked = await revoke_beyond(directory, tenant, principal_id, found, wanted, context)
        tally.revoked += len(revoked)
        gone = {a.id for a in revoked}
        held = {(a.resource_object_id, a.app_role_id) for a in found if a.id not in gone}
    missing = sorted(wanted - held)
    if missing:
        grants = GrantLoop(directory, tenant, principal_id, missing, context, probe=principal_is_new, tally=tally)
        await within_replication("permission grants", grants.attempt, deadline_seconds=deadline_seconds, clock=clock)
    return held | wanted


async def revoke_beyond(
    directory: Directory,
    tenant: str,
    principal_id: str,
    held: list[Assignment],
    wanted: set[Grant],
    context: dict[str, str],
) -> list[Assignment]:
    """Revoke every grant `principal_id` holds that the profile does not; the ones revoked now."""
    beyond = [a for a in held if (a.resource_object_id, a.app_role_id) not in wanted]
    revoked = await asyncio.gather(
        *(directory.revoke(tenant, a.resource_object_id, a.id) for a in beyond)
    )  # fmt: skip
    done = [a for a, gone in zip(beyond, revoked, strict=True) if gone]
    for assignment in done:
        audit(
            "permission.revoked", context, servicePrincipalId=principal_id,
            resourceId=assignment.resource_object_id, appRoleId=assignment.app_role_id,
        )  # fmt: skip
    return done


class GrantLoop:
    """Grants `missing` to a principal, one attempt per call of `attempt`, for a caller's retry loop to repeat.

    For a service principal just created (`probe`), each attempt sends a single grant until one lands:
    until it has replicated every item fails, and Graph counts (and throttles) every item of a $batch,
    so polling with the whole batch cost ~90 Graph requests an onboarding instead of ~30. Once one
    lands, the rest go at once, batched: one round trip more than batching from the start.
    An attempt that leaves grants pending raises NotReplicatedYet, or Throttled with Graph's Retry-After.
    """

    def __init__(
        self, directory: Directory, tenant: str, principal_id: str, missing: list[Grant], context: dict[str, str],
        *, probe: bool, tally: Tally,
    ) -> None:  # fmt: skip
        self.directory = directory
        self.tenant = tenant
        self.principal_id = principal_id
        self.missing = list(missing)
        self.context = context
        self.probing = probe and len(missing) > 1
        self.tally = tally

    async def attempt(self) -> None:
        while self.missing:
            batch = self.missing[:1] if self.probing else self.missing
            result = await self.directory.grant(self.tenant, self.principal_id, batch)
            self.tally.granted += len(result.granted)
            for role_id in result.granted:
                audit("permission.granted", self.context, servicePrincipalId=self.principal_id, appRoleId=role_id)
            if result.granted:
                self.probing = False
            still_pending = [pair for pair in batch if pair[1] in result.pending]
            self.missing = still_pending + [pair for pair in self.missing if pair not in batch]
            if still_pending:
                raise (
                    NotReplicatedYet("the service principal")
                    if result.retry_after is None
                    else Throttled("graph", result.retry_after)
                )
