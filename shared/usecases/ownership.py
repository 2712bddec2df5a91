"""What makes an app registration this service's own, and only its own, before anything is granted to it.

The app's uniqueName is predictable, and in a customer tenant any member may by default register
apps. Someone can create the app under that name, add this service as a co-owner and keep a
credential of their own: granting the integration's permissions to it would hand them every one.
So an app this call did not create is used only when all of these hold:

- its owners are exactly this service (Graph lets an Application.ReadWrite.OwnedBy caller manage
  only what it owns, and no one else may add a credential to an app they do not own);
- it carries no federated credential (this service adds none) and no certificate but ones named
  the way this service names its own;
- on an app Key Vault has no record of (no stored secret's tags name its object id), no password
  but ones named the way this service names its own. Those (and certificates named so) are lost:
  had this service stored one, Key Vault would record the app. So they are removed before anything
  else, whoever added them (a name is easy to copy, and an intruder's copy goes with them).

So an app left half-made by an earlier call that died (before Key Vault recorded it) is finished
by the next PUT, and an app that Key Vault records stays this service's as long as it alone owns it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from shared.domain.audit import audit
from shared.domain.errors import NotOwned
from shared.domain.model import AppRegistration, SecretKind, StoredCertificate, StoredSecret
from shared.domain.ports import Directory
from shared.domain.registry import Registry, Tag


@dataclass(frozen=True)
class Ownership:
    """Why an app is not provably this service's alone (empty: it is)."""

    problems: tuple[str, ...]
    lost_passwords: tuple[str, ...] = ()  # keyIds to remove first: named as ours on an app nobody recorded
    lost_keys: tuple[str, ...] = ()  # the same for certificates

    @property
    def proven(self) -> bool:
        return not self.problems


async def examine(
    directory: Directory,
    tenant: str,
    app: AppRegistration,
    stored: dict[SecretKind, StoredSecret | None],
    issued_prefix: str,
    certificate: StoredCertificate | None = None,
) -> Ownership:
    """Read the app's owners and federated credentials (at once) and judge it against Key Vault's record: its
    secrets, and its client certificate (whose own key on the app is never lost, however far onboarding got)."""
    owners, federated, me = await asyncio.gather(
        directory.application_owners(tenant, app.object_id),
        directory.federated_credentials(tenant, app.object_id),
        directory.caller_object_id(tenant),
    )
    recorded = any(
        record is not None and record.tags.get(Tag.APP_OBJECT_ID) == app.object_id
        for record in (*stored.values(), certificate)
    )
    stored_key = Registry.key_credential_id(certificate.certificate.thumbprint_sha256) if certificate else None
    problems = []
    others = owners - {me}
    if others:
        problems.append(f"{len(others)} owner(s) other than this service")
    if me not in owners:
        problems.append("this service is not an owner")
    foreign_keys = [k for k in app.keys if not (k.display_name or "").startswith(issued_prefix)]
    if foreign_keys:
        problems.append(f"{len(foreign_keys)} certificate credential(s) this service did not add")
    if federated:
        problems.append(f"{len(federated)} federated credential(s) this service did not add")
    lost: tuple[str, ...] = ()
    lost_keys: tuple[str, ...] = ()
    if not recorded:
        foreign = [p for p in app.passwords if not (p.display_name or "").startswith(issued_prefix)]
        if foreign:
            problems.append(f"{len(foreign)} client secret(s) this service did not add")
        lost = tuple(p.key_id for p in app.passwords if p not in foreign)
        lost_keys = tuple(k.key_id for k in app.keys if k not in foreign_keys and k.key_id != stored_key)
    return Ownership(tuple(problems), lost, lost_keys)


async def require_ours(
    directory: Directory,
    tenant: str,
    app: AppRegistration,
    stored: dict[SecretKind, StoredSecret | None],
    issued_prefix: str,
    context: dict[str, str],
    certificate: StoredCertificate | None = None,
) -> Ownership:
    """`examine`, refusing (NotOwned, 409 registration-not-owned, with an `application.refused` audit event)
    an app that is not provably this service's alone; nothing is written before this passes."""
    ownership = await examine(directory, tenant, app, stored, issued_prefix, certificate)
    if not ownership.proven:
        reasons = "; ".join(ownership.problems)
        audit("application.refused", context, appObjectId=app.object_id, clientId=app.app_id, reasons=reasons)
        raise NotOwned(
            f"The app under this integration's unique name is not provably this service's alone: {reasons}. "
            "Nothing was granted, minted or rotated. Delete the app (or remove what is listed) and try again.",
            appObjectId=app.object_id,
            reasons=list(ownership.problems),
            **context,
        )
    return ownership
