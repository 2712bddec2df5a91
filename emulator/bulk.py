"""Registrations made in bulk, exactly as the product leaves them after onboarding (and after a rotation).

Onboarding 50,000 registrations through the product takes hours; a benchmark of the rotation
sweep needs them in seconds. Each registration gets what `shared/usecases/onboarding.py` and
`shared/usecases/rotation.py` write, field for field:

- in Entra: the app (uniqueName `{prefix}-{integration}`, the catalog's display name, tags
  `tenant-onboarding` and `integration:{id}`, the automation note, `requiredResourceAccess`),
  owned by the managing identity; its service principal (also owned); the profile's app role
  assignments; and a password credential named `{prefix} {12 hex}`;
- in Key Vault: `{prefix}-{tenant}-{integration}-client-secret` (the secret text, content type
  `application/vnd.entra.client-secret`, `exp` = the credential's end, tags `managed-by`,
  `tenant-id`, `integration`, `kind`, `app-object-id`, `client-id`, `key-id`, `verified`,
  `issued-at`), and `-client-id` / `-tenant-id` (their values, no `exp`, the first six tags).

A chosen share is *due* (its credential ends inside the rotation window), a share was rotated
and is *retiring* (a second credential and a second secret version carrying `previous-key-id`,
`rotated-at` and a `retire-after` already past) or *waiting* (the same, with the grace period
still running); the rest are fresh. Times follow the directory clock.
"""

from __future__ import annotations

import base64
import gc
import random
import secrets
import uuid
from datetime import datetime, timedelta

from shared.domain.model import SecretKind
from shared.domain.registry import APP_NOTES, Registry, Tag
from shared.usecases.credentials import CONTENT_TYPES as PRODUCT_CONTENT_TYPES

from .clock import iso, parse_iso
from .graph import application_resource, new_secret_text, service_principal_from
from .state import JsonObject, SecretRecord, SecretVersion, Tenant, World, hash_secret

# What the product writes, from the product's own registry and credential flow: a bulk registration
# cannot drift from an onboarded one.
CONTENT_TYPES = {kind.value: content_type for kind, content_type in PRODUCT_CONTENT_TYPES.items()}
SHARES = ("due", "retiring", "waiting")


def seed_registrations(world: World, spec: JsonObject) -> JsonObject:
    """Create the registrations `spec` describes; all or nothing. Returns which integration is in which state.

    spec: {"namePrefix", "integrations": [ids], "permissions": [{"resourceAppId", "roles": [values]}],
    optional "tenantId" (default home), "owner" (an SP object id; default the managed identity at
    home), "displayName", "secretLifetimeDays" (180), "rotationWindowDays" (30), "graceHours" (48),
    "due", "retiring", "waiting" (shares, 0-1), "seed"}.
    """
    tenant = world.tenant(str(spec.get("tenantId") or world.home_tenant_id))
    if tenant is None:
        raise ValueError(f"unknown tenant {spec.get('tenantId')}")
    prefix = str(spec["namePrefix"])
    integrations = [str(i) for i in spec["integrations"]]
    if len(set(integrations)) != len(integrations):
        raise ValueError("integrations must be unique")
    owner = str(spec.get("owner") or _home_identity(world, tenant))
    if owner not in tenant.service_principals:
        raise ValueError(f"owner {owner} is not a service principal in tenant {tenant.id}")
    grants = _grants(tenant, spec.get("permissions") or [])
    lifetime = timedelta(days=float(spec.get("secretLifetimeDays", 180)))
    # The product rotates within the window, never more than half a credential's life ahead (rotation._window).
    window = min(timedelta(days=float(spec.get("rotationWindowDays", 30))), lifetime / 2)
    grace = timedelta(hours=float(spec.get("graceHours", 48)))
    shares = {share: float(spec.get(share, 0.0)) for share in SHARES}
    if any(not 0 <= s <= 1 for s in shares.values()) or sum(shares.values()) > 1:
        raise ValueError("due, retiring and waiting are shares between 0 and 1 that add up to at most 1")
    registry = Registry(prefix)
    for integration in integrations:
        if tenant.application_by_unique_name(registry.unique_name(integration)) is not None:
            raise ValueError(f"an app with uniqueName {registry.unique_name(integration)} already exists")
        for name in registry.secret_names(tenant.id, integration).values():
            name = name.lower()
            if name in world.vault.secrets or name in world.vault.deleted_secrets:
                raise ValueError(f"the vault already holds a secret named {name}")

    rng = random.Random(spec.get("seed", 0))
    order = list(range(len(integrations)))
    rng.shuffle(order)
    state = ["fresh"] * len(integrations)
    taken = 0
    for share in SHARES:
        count = round(len(integrations) * shares[share])
        for index in order[taken : taken + count]:
            state[index] = share
        taken += count

    # Tens of thousands of new objects at once: the cyclic collector would scan the whole (growing)
    # world many times over while they are made, and again on every later collection. Paused while
    # they are made, then moved out of its way (they are long-lived; reference counting still frees them).
    gc.disable()
    try:
        return _create(world, tenant, prefix, integrations, state, spec, owner, grants, lifetime, window, grace, rng)
    finally:
        gc.freeze()
        gc.enable()


def _create(
    world: World,
    tenant: Tenant,
    prefix: str,
    integrations: list[str],
    state: list[str],
    spec: JsonObject,
    owner: str,
    grants: list[tuple[JsonObject, str]],
    lifetime: timedelta,
    window: timedelta,
    grace: timedelta,
    rng: random.Random,
) -> JsonObject:
    now = world.clock.now()
    records: list[SecretRecord] = []
    chosen: dict[str, list[str]] = {share: [] for share in SHARES}
    for integration, kind in zip(integrations, state, strict=True):
        if kind == "fresh":
            # Issued at some point before it became due: anywhere in the part of its life outside the window.
            outside = (lifetime - window - timedelta(days=1)).total_seconds()
            credentials = [now - timedelta(seconds=rng.uniform(0, max(outside, 0)))]
        else:
            chosen[kind].append(integration)
            # Due: issued so long ago that half the window is left. Retiring and waiting: that
            # credential was rotated, more than the grace period ago or an hour ago.
            credentials = [now - (lifetime - window / 2)]
            if kind == "retiring":
                credentials.append(now - grace - timedelta(hours=1))
            elif kind == "waiting":
                credentials.append(now - timedelta(hours=1))
        records += _registration(world, tenant, prefix, integration, spec, owner, grants, credentials, lifetime, grace)
    world.vault.add_records(records)
    world.touch()
    return {
        "tenantId": tenant.id,
        "created": len(integrations),
        "secrets": len(records),
        **chosen,
        "fresh": len(integrations) - sum(len(v) for v in chosen.values()),
    }


def _home_identity(world: World, tenant: Tenant) -> str:
    """The managed identity that onboards in its own tenant (elsewhere the caller names the provisioner's SP)."""
    client_id = world.default_managed_identity
    if client_id is None or world.managed_identities[client_id][0] != tenant.id:
        raise ValueError("name the owner: the service principal that manages apps in this tenant")
    return world.managed_identities[client_id][1]


def _grants(tenant: Tenant, permissions: list[JsonObject]) -> list[tuple[JsonObject, str]]:
    """(resource service principal, app role id) for every permission, resolved by value as onboarding does."""
    grants = []
    for permission in permissions:
        resource = tenant.service_principal_by_app_id(str(permission["resourceAppId"]))
        if resource is None:
            raise ValueError(f"tenant {tenant.id} has no service principal for {permission['resourceAppId']}")
        by_value = {r["value"]: r["id"] for r in resource.get("appRoles", [])}
        for value in permission.get("roles", []):
            if value not in by_value:
                raise ValueError(f"{resource['displayName']} has no app role {value!r}")
            grants.append((resource, by_value[value]))
    return grants


def _registration(
    world: World,
    tenant: Tenant,
    prefix: str,
    integration: str,
    spec: JsonObject,
    owner: str,
    grants: list[tuple[JsonObject, str]],
    issued: list[datetime],
    lifetime: timedelta,
    grace: timedelta,
) -> list[SecretRecord]:
    """One app, its service principal, grants and credentials (oldest first); its three Key Vault secrets."""
    registry = Registry(prefix)
    object_id, app_id = str(uuid.uuid4()), str(uuid.uuid4())
    required: dict[str, list[JsonObject]] = {}
    for resource, role_id in grants:
        required.setdefault(resource["appId"], []).append({"id": role_id, "type": "Role"})
    passwords: list[JsonObject] = []
    texts: list[str] = []
    for start in issued:
        text = new_secret_text()
        key_id = str(uuid.uuid4())
        passwords.append(
            {
                "customKeyIdentifier": None,
                "displayName": registry.new_credential_name(),
                "endDateTime": iso(start + lifetime),
                "hint": text[:3],
                "keyId": key_id,
                "secretText": None,
                "startDateTime": iso(start),
            }
        )
        texts.append(text)
        tenant.password_hashes[key_id] = hash_secret(text)
    app = application_resource(tenant, object_id, app_id, iso(issued[0]), str(spec.get("displayName") or integration))
    app.update(
        {
            "notes": APP_NOTES,
            "tags": list(registry.app_tags(integration)),
            "uniqueName": registry.unique_name(integration),
            "passwordCredentials": passwords,
            "requiredResourceAccess": [
                {"resourceAppId": resource_app_id, "resourceAccess": access}
                for resource_app_id, access in required.items()
            ],
        }
    )
    tenant.add_application(app)
    tenant.owners[object_id] = [owner]  # the creator owns what it creates (Application.ReadWrite.OwnedBy)
    sp = service_principal_from(world, tenant, app, {})  # ownerless, as Graph leaves it (graph/service_principals.py)
    for resource, role_id in grants:
        tenant.add_assignment(
            {
                "id": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("="),
                "deletedDateTime": None,
                "appRoleId": role_id,
                "createdDateTime": iso(issued[0]),
                "principalDisplayName": sp["displayName"],
                "principalId": sp["id"],
                "principalType": "ServicePrincipal",
                "resourceDisplayName": resource["displayName"],
                "resourceId": resource["id"],
            }
        )

    names = registry.secret_names(tenant.id, integration)
    secret = SecretRecord(name=names[SecretKind.CLIENT_SECRET])
    previous: str | None = None
    for password, text in zip(passwords, texts, strict=True):
        start, end = parse_iso(password["startDateTime"]), parse_iso(password["endDateTime"])
        tags = registry.tags(tenant.id, integration, SecretKind.CLIENT_SECRET, object_id, app_id) | {
            Tag.KEY_ID: password["keyId"],
            Tag.VERIFIED: Tag.TRUE,
            Tag.ISSUED_AT: password["startDateTime"],
            Tag.LIFETIME_DAYS: str(round((end - start).total_seconds() / 86400)),
        }
        if previous is not None:  # what rotation writes on the version it stores
            tags |= {
                Tag.PREVIOUS_KEY_ID: previous,
                Tag.ROTATED_AT: password["startDateTime"],
                Tag.RETIRE_AFTER: iso(start + grace),
            }
        secret.versions.append(
            _version(secret.name, text, SecretKind.CLIENT_SECRET.value, tags, int(end.timestamp()), start)
        )
        previous = password["keyId"]
    records = [secret]
    for kind, value in ((SecretKind.CLIENT_ID, app_id), (SecretKind.TENANT_ID, tenant.id)):
        record = SecretRecord(name=names[kind])
        tags = registry.tags(tenant.id, integration, kind, object_id, app_id)
        record.versions.append(_version(record.name, value, kind.value, tags, None, issued[0]))
        records.append(record)
    return records


def _version(
    name: str, value: str, kind: str, tags: dict[str, str], expires: int | None, written: datetime
) -> SecretVersion:
    at = int(written.timestamp())
    return SecretVersion(
        name=name,
        version=uuid.uuid4().hex,
        value=value,
        content_type=CONTENT_TYPES[kind],
        tags=tags,
        enabled=True,
        not_before=None,
        expires=expires,
        created=at,
        updated=at,
    )
