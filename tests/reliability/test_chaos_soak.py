"""Chaos soak: onboardings across many customer tenants and rotation sweeps, with a fifth of calls failing.

Faults: 429 with Retry-After, 5xx, dropped connections (before and after the write) and
replication lag, on Graph, Key Vault and Entra. The registrations mix every credential type: client
secrets; client certificates Key Vault creates (two-month validity, so the sweeps rotate them as they
rotate the secrets); certificates the vendor issued (installed, never rotated); and the secretless
federated type, whose customer admin consents when the first answer asks (two tenants share a
connector, set up under the same faults). Sentinel registrations name their tenant's workspace: their
Sentinel role is assigned, proven by a query and recorded while Azure Resource Manager and the Log
Analytics API fail their first calls. The slice CI runs is small but has the same mix
(the seeds it was checked with: see the README); the full run is CHAOS_ONBOARDINGS=200 CHAOS_TENANTS=20
CHAOS_SWEEPS=10, and CHAOS_SEED picks another seed.
"""

from __future__ import annotations

import asyncio
import base64
import enum
import os
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity.aio import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)
from azure.keyvault.secrets.aio import SecretClient

from emulator.launcher import StandIn
from shared import bootstrap
from shared.domain.catalog import load_catalog
from shared.domain.errors import OnboardingError
from shared.domain.model import CredentialType, IntegrationProfile
from shared.entrypoints.presenters import sweep_json
from shared.settings import load_settings
from shared.usecases.onboarding import OnboardRequest, Outcome
from shared.usecases.status import RegistrationState
from shared.usecases.workspace_access import CONDITION, RBAC_ADMINISTRATOR, WorkspaceRequest
from tests.azurite import Azurite
from tests.emulator.directory import GRAPH_APP_ID
from tests.functions.conftest import PROVISIONER_ROLES, provisioner_app
from tests.functions.test_certificates import VendorCertificate
from tests.functions.test_rotation import DAY, StandInClock

ONBOARDINGS = int(os.environ.get("CHAOS_ONBOARDINGS", "16"))
TENANTS = int(os.environ.get("CHAOS_TENANTS", "8"))
SWEEPS = int(os.environ.get("CHAOS_SWEEPS", "2"))
SEED = int(os.environ.get("CHAOS_SEED", "11"))
INTEGRATIONS = ["sentinel", "m365-defender", "defender-endpoint"]
WITH_ADD_ONS = ("defender-xdr", "cloud-apps")  # two more resource APIs on the same app
BACKEND_SUBJECT = "7d1c4a52-3b8e-4f0a-9e6d-2c5b8a1f4e37"  # the vendor backend the connectors trust
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange/.default"


class Kind(enum.Enum):
    SECRET = "secret"
    CERTIFICATE = "certificate"  # created by Key Vault, rotated by the sweeps
    VENDOR = "vendor certificate"  # issued by the vendor, who holds its key
    FEDERATED = "federated"  # nothing stored but ids


def kind_of(index: int) -> Kind:
    """The credential type of the index-th onboarding: half secrets, and about a sixth each of the stronger types.
    (With 8 tenants and the CI slice's 16 onboardings, two federated ones share the sentinel connector.)"""
    if index % 6 == 1:
        return Kind.FEDERATED
    if index % 6 == 4:
        return Kind.VENDOR
    return Kind.CERTIFICATE if index % 4 == 3 else Kind.SECRET


# At least a fifth of each service's calls fail, plus replication lag on every new object.
CHAOS = [
    {"kind": "status", "service": "graph", "status": 429, "retry_after": 1, "probability": 0.08},
    {"kind": "status", "service": "graph", "status": 503, "retry_after": 1, "probability": 0.05},
    {"kind": "drop", "service": "graph", "drop": "after", "probability": 0.04},
    {"kind": "drop", "service": "graph", "drop": "before", "probability": 0.03},
    {"kind": "status", "service": "vault", "status": 429, "retry_after": 1, "probability": 0.10},
    {"kind": "status", "service": "vault", "status": 500, "probability": 0.06},
    {"kind": "drop", "service": "vault", "drop": "after", "probability": 0.04},
    {"kind": "status", "service": "entra", "path": "/oauth2/", "status": 503, "probability": 0.20},
    # Azure Resource Manager and the Log Analytics query API (the Sentinel workspaces): their first calls fail.
    {"kind": "status", "service": "arm", "status": 503, "count": 3},
    {"kind": "status", "service": "arm", "status": 429, "retry_after": 1, "count": 2},
    {"kind": "status", "service": "loganalytics", "status": 503, "count": 2},
]


@pytest.fixture
async def vendor_many(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[bootstrap.Services, StandIn, list[str], StandInClock]]:
    stand_in = clock_stand_in
    stand_in.clear_faults()
    for name, value in stand_in.app_settings().items():
        monkeypatch.setenv(name, value)
    provisioner = await provisioner_app(stand_in, str(stand_in.info["managed_identity_object_id"]))
    tenants = []
    for index in range(TENANTS):
        tenant = stand_in.admin(
            "POST",
            "/tenants",
            {
                "displayName": f"Chaos {index}",
                "resourceApps": [
                    "graph",
                    "logAnalytics",
                    "defenderEndpoint",
                    "threatProtection",
                    "cloudApps",
                    "azureServiceManagement",
                ],
            },
        )["id"]
        stand_in.admin(
            "POST", f"/tenants/{tenant}/consent", {"appId": provisioner, "roles": {GRAPH_APP_ID: PROVISIONER_ROLES}}
        )
        tenants.append(tenant)
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("NAME_PREFIX", f"x{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("PROVISIONER_CLIENT_ID", provisioner)
    monkeypatch.setenv("SECRET_LIFETIME_DAYS", "60")
    monkeypatch.setenv("CERTIFICATE_VALIDITY_MONTHS", "2")  # due within the sweeps, as the secrets are
    monkeypatch.setenv("REPLICATION_TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("VERIFY_TIMEOUT_SECONDS", "20")
    monkeypatch.setenv("ORPHAN_GRACE_MINUTES", "0")
    monkeypatch.setenv("CONNECTOR_TRUST_SUBJECT", BACKEND_SUBJECT)
    clock = StandInClock(stand_in)
    services = bootstrap.build(load_settings(), now=clock.now)
    try:
        yield services, stand_in, tenants, clock
    finally:
        await services.close()
        stand_in.clear_faults()


async def test_chaos_soak_loses_nothing_and_duplicates_nothing(
    vendor_many: tuple[bootstrap.Services, StandIn, list[str], StandInClock],
) -> None:
    services, stand_in, tenants, clock = vendor_many
    workspaces = {
        tenant: granted_workspace(stand_in, tenant, str(services.settings.provisioner_client_id)) for tenant in tenants
    }
    targets = [(tenants[i % TENANTS], INTEGRATIONS[(i // TENANTS) % len(INTEGRATIONS)]) for i in range(ONBOARDINGS)]
    kinds = {target: kind_of(i) for i, target in reversed(list(enumerate(targets)))}  # a repeat keeps the first's
    vendor = {target: VendorCertificate(clock.now(), days=365) for target, kind in kinds.items() if kind is Kind.VENDOR}
    # Every m365-defender registration but the federated ones (add-ons need an app of their own) has two add-ons.
    add_ons: dict[tuple[str, str], tuple[str, ...]] = {
        t: WITH_ADD_ONS if t[1] == "m365-defender" and k is not Kind.FEDERATED else () for t, k in kinds.items()
    }
    stand_in.set_faults(CHAOS, seed=SEED, application=300, servicePrincipal=300, password=500, appRoleAssignment=200)
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    unhandled: list[BaseException] = []
    history: dict[tuple[str, str], list[str]] = {}  # per registration, what each attempt answered

    async def onboard_until_done(tenant: str, integration: str) -> None:
        # A caller retries what failed, as the vendor's backend would: the PUT is idempotent.
        attempts = history.setdefault((tenant, integration), [])
        kind = kinds[(tenant, integration)]
        supplied = vendor[(tenant, integration)].pem if kind is Kind.VENDOR else None
        credential_type = {Kind.SECRET: None, Kind.FEDERATED: CredentialType.FEDERATED}.get(
            kind, CredentialType.CERTIFICATE
        )
        workspace = (
            WorkspaceRequest(workspaces[tenant]["id"])
            if integration == "sentinel" and kind is not Kind.FEDERATED
            else None
        )
        request = OnboardRequest(
            tenant, integration, credential_type=credential_type, certificate=supplied,
            add_ons=add_ons[(tenant, integration)] or None, workspace=workspace,
        )  # fmt: skip
        for _ in range(30):
            try:
                result = await services.onboarding.onboard(request)
            except OnboardingError as error:
                outcomes[f"retried after {error.problem_type}"] += 1
                attempts.append(f"{error.problem_type}: {error.detail}")
                continue
            except Exception as error:  # noqa: BLE001 - counted: the assertion below demands none
                unhandled.append(error)
                # Where it escaped from, so a seed that finds one names the code to fix.
                attempts.append("unhandled " + "".join(traceback.format_exception(error))[-2000:])
                return
            outcomes[result.outcome.value] += 1
            attempts.append(f"{result.outcome.value} {result.pending_reason or ''} {result.changes}")
            if result.outcome is not Outcome.PENDING:
                return
            if result.consent_url is not None:  # the customer's admin consents when asked (the admin API: no faults)
                consent(stand_in, tenant, services.catalog.require(integration), result.registration)
        outcomes["gave up"] += 1

    limit = asyncio.Semaphore(8)

    async def bounded(tenant: str, integration: str) -> None:
        async with limit:
            await onboard_until_done(tenant, integration)

    await asyncio.gather(*(bounded(t, i) for t, i in targets))
    sweeps = []
    for _ in range(SWEEPS):
        clock.advance(16 * DAY)
        sweeps.append(sweep_json(await services.sweep.run()))
    faults = stand_in.admin("GET", "/faults")
    injected = faults["injected"]
    stand_in.clear_faults()
    await services.sweep.run()  # a calm sweep finishes what the faults interrupted
    clock.advance(3 * DAY)  # past every grace period: the next sweep retires what is superseded
    await services.sweep.run()

    broken, duplicates = await verify(services, stand_in, kinds, vendor, add_ons)
    broken |= workspace_roles(stand_in, services.settings.name_prefix, kinds, workspaces)
    working = len(kinds) - len(broken)
    for registration, reason in broken.items():
        print(f"\nnot working: {registration}: {reason}; attempts: {history.get(registration)}")
    print(
        f"\nchaos soak: {len(targets)} onboardings over {TENANTS} tenants, {SWEEPS} sweeps, {injected} faults injected "
        f"in {time.monotonic() - started:.0f} s; outcomes {dict(outcomes)}; sweeps {[s['outcomes'] for s in sweeps]}; "
        f"{working}/{len(kinds)} registrations authenticate ({dict(Counter(k.value for k in kinds.values()))}); "
        f"{duplicates} duplicates; {len(unhandled)} unhandled"
    )
    # The faults were there: every rule fired, and the failures add up to the share the mix promises.
    for rule in faults["rules"]:
        what = rule["drop"] if rule["kind"] == "drop" else rule["status"]
        print(f"  {rule['service']} {rule['kind']} {what}: fired {rule['fired']} of {rule['seen']}")
    assert [r for r in faults["rules"] if r["fired"] == 0] == [], faults["rules"]
    for service in ("graph", "vault"):
        rules = [r for r in faults["rules"] if r["service"] == service]
        failed, requests = sum(r["fired"] for r in rules), rules[0]["seen"]  # the first rule matches every call
        assert failed >= 0.10 * requests, (service, failed, requests)
    assert unhandled == []
    assert outcomes["gave up"] == 0
    assert duplicates == 0
    assert working == len(kinds)


def granted_workspace(stand_in: StandIn, tenant: str, provisioner: str) -> dict[str, Any]:
    """A Sentinel workspace in the tenant whose admin granted the provisioner what docs/sentinel.md asks."""
    principal = next(
        sp["id"] for sp in stand_in.state()["tenants"][tenant]["servicePrincipals"] if sp["appId"] == provisioner
    )
    workspace: dict[str, Any] = stand_in.admin("POST", "/workspaces", {
        "tenantId": tenant, "subscriptionId": str(uuid.uuid5(uuid.NAMESPACE_URL, tenant)), "resourceGroup": "rg-chaos",
        "name": f"law-{tenant[:8]}",
    })  # fmt: skip
    roles = ", ".join(r.role_definition_id for r in load_catalog().require("sentinel").workspace_roles)
    stand_in.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": RBAC_ADMINISTRATOR, "principalType": "ServicePrincipal",
        "principalId": principal, "condition": CONDITION.format(roles=roles),
    })  # fmt: skip
    return workspace


def workspace_roles(
    stand_in: StandIn, prefix: str, kinds: dict[tuple[str, str], Kind], workspaces: dict[str, dict[str, Any]]
) -> dict[tuple[str, str], str]:
    """Sentinel registrations whose app does not hold exactly one Sentinel role on its workspace, recorded in Key
    Vault with the workspace's id, and why."""
    state, broken = stand_in.state(), {}
    for (tenant, integration), kind in kinds.items():
        if integration != "sentinel" or kind is Kind.FEDERATED:
            continue
        apps = [a for a in state["tenants"][tenant]["applications"] if a["uniqueName"] == f"{prefix}-sentinel"]
        principals = [
            sp["id"] for sp in state["tenants"][tenant]["servicePrincipals"] if apps and sp["appId"] == apps[0]["appId"]
        ]
        if not principals:
            broken[(tenant, integration)] = "no app or service principal"
            continue
        principal = principals[0]
        workspace = workspaces[tenant]
        listed = stand_in.admin("GET", f"/roleAssignments?scope={workspace['id']}")["value"]
        held = [a for a in listed if a["properties"]["principalId"] == principal]
        record = state["vault"]["secrets"].get(f"{prefix}-{tenant}-sentinel-workspace-id")
        if len(held) != 1:
            broken[(tenant, integration)] = f"{len(held)} Sentinel roles on the workspace"
        elif record is None or record["versions"][-1]["tags"].get("role-assignment-id") != held[0]["id"]:
            broken[(tenant, integration)] = "the workspace's role assignment is not the one Key Vault records"
    return broken


def constant(value: str) -> Callable[[], str]:
    return lambda: value


def consent(stand_in: StandIn, tenant: str, profile: IntegrationProfile, registration: RegistrationState) -> None:
    """What the customer's admin does at the consent URL: the connector's principal and its roles in their tenant."""
    assert registration.application is not None
    roles = {p.resource_app_id: list(p.roles) for p in profile.permissions}
    stand_in.admin("POST", f"/tenants/{tenant}/consent", {"appId": registration.application.client_id, "roles": roles})


def count_duplicates(state: dict[str, Any], home_tenant: str, prefix: str, kinds: dict[tuple[str, str], Kind]) -> int:
    """Apps or credentials beyond one each: an app per registration with one credential of its own type (a connector
    per integration, with no credential and exactly its two trusts, for the federated ones)."""
    duplicates = 0
    own_credential = {
        Kind.SECRET: "passwordKeyIds",
        Kind.CERTIFICATE: "keyCredentialIds",
        Kind.VENDOR: "keyCredentialIds",
    }
    for (tenant, integration), kind in kinds.items():
        if kind is Kind.FEDERATED:
            continue
        apps = [a for a in state["tenants"][tenant]["applications"] if a["uniqueName"] == f"{prefix}-{integration}"]
        duplicates += max(0, len(apps) - 1)
        for app in apps:
            own = own_credential[kind]
            other = "keyCredentialIds" if own == "passwordKeyIds" else "passwordKeyIds"
            duplicates += max(0, len(app[own]) - 1) + len(app[other])
    for integration in {i for (_, i), kind in kinds.items() if kind is Kind.FEDERATED}:
        home = state["tenants"][home_tenant]["applications"]
        connectors = [a for a in home if a["uniqueName"] == f"{prefix}-connector-{integration}"]
        duplicates += max(0, len(connectors) - 1)
        for connector in connectors:
            credentials = len(connector["passwordKeyIds"]) + len(connector["keyCredentialIds"])
            duplicates += credentials + abs(len(connector["federatedCredentials"]) - 2)
    return duplicates


async def verify(
    services: bootstrap.Services,
    stand_in: StandIn,
    kinds: dict[tuple[str, str], Kind],
    vendor: dict[tuple[str, str], VendorCertificate],
    add_ons: dict[tuple[str, str], tuple[str, ...]],
) -> tuple[dict[tuple[str, str], str], int]:
    """(registrations whose stored credential does not authenticate in its tenant with its profile's roles, and why:
    the stored secret or Key Vault's certificate, the vendor's own key, or the federated exchange; duplicates)."""
    prefix = services.settings.name_prefix
    duplicates = count_duplicates(stand_in.state(), stand_in.home_tenant_id, prefix, kinds)
    identity = ManagedIdentityCredential()
    vault = SecretClient(
        stand_in.vault_url, identity, verify_challenge_resource=False, connection_verify=stand_in.ca_bundle
    )
    broken: dict[tuple[str, str], str] = {}
    try:
        for (tenant, integration), kind in kinds.items():
            options: dict[str, Any] = {
                "authority": stand_in.authority, "disable_instance_discovery": True,
                "connection_verify": stand_in.ca_bundle,
            }  # fmt: skip
            credential: ClientSecretCredential | CertificateCredential | ClientAssertionCredential
            names = f"{prefix}-{tenant}-{integration}-"
            try:
                client_id = str((await vault.get_secret(f"{names}client-id")).value)
                if kind is Kind.SECRET:
                    secret = str((await vault.get_secret(f"{names}client-secret")).value)
                    credential = ClientSecretCredential(tenant, client_id, secret, **options)
                elif kind is Kind.CERTIFICATE:
                    pkcs12 = base64.b64decode(str((await vault.get_secret(f"{names}client-certificate")).value))
                    credential = CertificateCredential(tenant, client_id, certificate_data=pkcs12, **options)
                elif kind is Kind.VENDOR:
                    await vault.get_secret(f"{names}vendor-certificate")  # recorded, and signed with by the vendor
                    pem = (vendor[(tenant, integration)].key_pem + vendor[(tenant, integration)].pem).encode()
                    credential = CertificateCredential(tenant, client_id, certificate_data=pem, **options)
                else:  # the connector trusts this service's identity (the proof) beside the vendor's backend
                    assertion = (await identity.get_token(EXCHANGE_AUDIENCE)).token
                    credential = ClientAssertionCredential(tenant, client_id, constant(assertion), **options)
            except ResourceNotFoundError:
                broken[(tenant, integration)] = f"no {kind.value} or client id stored"
                continue
            profile = services.catalog.require(integration).with_add_ons(add_ons[(tenant, integration)])
            try:
                for resource in profile.permissions:  # a token for each resource API, holding exactly its roles
                    token = await credential.get_token(f"{resource.resource_app_id}/.default")
                    claims = jwt.decode(token.token, options={"verify_signature": False})
                    if claims["tid"] != tenant:
                        broken[(tenant, integration)] = "token from another tenant"
                    elif sorted(claims.get("roles", [])) != sorted(resource.roles):
                        broken[(tenant, integration)] = f"roles {claims.get('roles')}, not {sorted(resource.roles)}"
            except ClientAuthenticationError as error:
                broken[(tenant, integration)] = f"stored {kind.value} refused: {error.message[:200]}"
            finally:
                await credential.close()
    finally:
        await vault.close()
        await identity.close()
    return broken, duplicates
