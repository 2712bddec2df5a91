"""Crash at every step: a real process SIGKILLed after each change it makes (and at random moments),
then the same operation run again must converge, with nothing of another registration touched.

A calibration run of each operation, uninterrupted, counts its changes (audit events) and times it;
every case must really die (SIGKILL), after a change the calibration saw or at a moment inside its
time. The random moments are drawn from CRASH_SEED (a new seed each run unless set), which every
failure names: CRASH_SEED=<seed> draws the same moments again, as shares of the operation's time.

A certificate registration's onboarding and rotation are killed the same way: the rerun must leave exactly
one current key on the app, the one Key Vault's latest certificate holds, no key whose certificate Key
Vault does not hold (but the previous one, within its grace period), no staging certificate, and the
stored certificate tagged `verified` only once a token signed with it was got.

The secretless (federated) type is killed while its connector app and trusts are set up and, once the
customer's admin has consented, while it proves the consent and stores the ids: the rerun must leave one
connector with exactly its two trusts and no credential, and ids stored only once a token through the
exchange held every role. A certificate the vendor issued is killed on its first onboarding and while the
vendor replaces it: the previous key keeps signing in throughout, and no key is on the app unrecorded."""

from __future__ import annotations

import base64
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
import pytest
from azure.core.exceptions import ClientAuthenticationError, ResourceNotFoundError
from azure.identity import (
    CertificateCredential,
    ClientAssertionCredential,
    ClientSecretCredential,
    ManagedIdentityCredential,
)
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.secrets import SecretClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from emulator.launcher import StandIn
from shared.domain.catalog import load_catalog
from shared.domain.registry import Registry
from tests.functions.test_certificates import VendorCertificate

REPO = Path(__file__).resolve().parents[2]
INTEGRATION = "sentinel"  # two permissions on two resource APIs: every step is exercised
ONBOARD_EVENTS = 9  # application, service principal, secret created, 2 grants, 3 secrets stored, registration ready
ROTATE_EVENTS = 6  # secret created, staged (stored), stored, staging deleted, rotated, retired
OFFBOARD_EVENTS = 6  # application deleted, application purged, 3 secrets deleted, registration offboarded
RANDOM_POINTS = 2
SEED = int(os.environ.get("CRASH_SEED") or random.SystemRandom().randrange(1, 10**6))
EARLIEST, LATEST = 0.05, 0.7  # random moments: this share of the calibrated time, and no later (a slower run dies too)
# application, service principal, 2 grants beside certificate created and added, client id and tenant id stored,
# registration ready
CERTIFICATE_ONBOARD_EVENTS = 9
# staging certificate created, added to the app, promoted (rotated), staging deleted, previous retired
CERTIFICATE_ROTATE_EVENTS = 5
CERTIFICATE_RANDOM_POINTS = 1
ROLES = {"Data.Read", "SecurityEvents.Read.All"}  # the profile's, across its two resource APIs
SCOPES = ("https://api.loganalytics.io/.default", "https://graph.microsoft.com/.default")


def run(stand_in: StandIn, prefix: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **stand_in.app_settings(), NAME_PREFIX=prefix, ORPHAN_GRACE_MINUTES="0", **settings)
    env.pop("AzureWebJobsStorage", None)  # a killed holder's blob lease would block the rerun for 60 s
    return subprocess.run(
        [sys.executable, "-m", "tests.reliability.crash_runner", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def cli(stand_in: StandIn, prefix: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, **stand_in.app_settings(), NAME_PREFIX=prefix, ORPHAN_GRACE_MINUTES="0", **settings)
    env.pop("AzureWebJobsStorage", None)
    return subprocess.run(
        [sys.executable, "-m", "shared.entrypoints.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def calibrate(
    stand_in: StandIn,
    tmp: pytest.TempPathFactory,
    prefix: str,
    tenant: str,
    integration: str,
    operation: str,
    exit_code: int = 0,
    **settings: str,
) -> dict[str, Any]:
    """One operation run through by crash_runner (calibrate mode): its audit events, their names and its time."""
    out = tmp.mktemp("calibration") / f"{operation}.json"
    done = run(stand_in, prefix, operation, tenant, integration, "calibrate", str(out), **settings)
    assert done.returncode == exit_code, done.stderr[-2000:]
    measured: dict[str, Any] = json.loads(out.read_text())
    return measured


def registration(
    stand_in: StandIn, prefix: str, integration: str = INTEGRATION
) -> tuple[list[dict[str, object]], dict[str, object]]:
    state = stand_in.state()
    tenant = state["tenants"][stand_in.home_tenant_id]
    apps = [a for a in tenant["applications"] if a["uniqueName"] == f"{prefix}-{integration}"]
    secrets = {n: v for n, v in state["vault"]["secrets"].items() if n.startswith(prefix)}
    return apps, secrets


def stored_secret_roles(stand_in: StandIn, prefix: str) -> set[str] | None:
    """The roles a token obtained with the stored secret carries (None if it does not authenticate)."""
    name = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-client-secret"
    os.environ.update(stand_in.identity_env())
    vault = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=stand_in.ca_bundle)  # fmt: skip
    secret = vault.get_secret(name)
    credential = ClientSecretCredential(
        stand_in.home_tenant_id, (secret.properties.tags or {})["client-id"], str(secret.value),
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    try:
        roles: set[str] = set()
        for scope in SCOPES:
            token = credential.get_token(scope).token
            roles |= set(jwt.decode(token, options={"verify_signature": False}).get("roles", []))
        return roles
    except ClientAuthenticationError:
        return None


def assert_converged(stand_in: StandIn, prefix: str, records: int = 3) -> None:
    apps, secrets = registration(stand_in, prefix)
    assert len(apps) == 1, apps
    assert len(secrets) == records, sorted(secrets)
    assert stored_secret_roles(stand_in, prefix) == ROLES  # grants == the profile
    service_principals = stand_in.state()["tenants"][stand_in.home_tenant_id]["servicePrincipals"]
    assert [sp["appId"] for sp in service_principals].count(apps[0]["appId"]) == 1
    # No orphan: every credential left on the app is the stored one, or the one the stored version names
    # as its predecessor (still in its grace period); anything else would be a secret nobody holds.
    name = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-client-secret"
    latest_tags = secrets[name]["versions"][-1]["tags"]  # type: ignore[index]
    accounted_for = {latest_tags["key-id"], latest_tags.get("previous-key-id")}
    assert latest_tags["key-id"] in apps[0]["passwordKeyIds"]  # type: ignore[operator]
    assert set(apps[0]["passwordKeyIds"]) <= accounted_for, (apps[0]["passwordKeyIds"], latest_tags)  # type: ignore[call-overload]


EVENTS = {"onboard": ONBOARD_EVENTS, "rotate": ROTATE_EVENTS, "offboard": OFFBOARD_EVENTS}


def every_point(events: dict[str, int], random_points: int) -> list[Any]:
    """Every kill point of every operation, and the random moments. The suite CI runs kills each operation after
    its first change and at its first random moment (a share of its time drawn from CRASH_SEED, so each run
    kills it somewhere else); `scripts/long` runs every change and every random moment (`long`)."""
    return [
        pytest.param(op, "after-event", n, marks=() if n == 1 else pytest.mark.long)
        for op, count in events.items()
        for n in range(1, count + 1)
    ] + [
        pytest.param(op, "random", i, marks=() if i == 0 else pytest.mark.long)
        for op in events
        for i in range(random_points)
    ]


CASES = every_point(EVENTS, RANDOM_POINTS)


@pytest.fixture(scope="module")
def calibration(stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    """Each operation run through once, from the state its cases start from: its audit events and its time."""
    prefix, tenant = f"c{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    measured = {}
    for operation in EVENTS:  # onboard, then rotate and offboard what it made, as the cases do
        measured[operation] = calibrate(stand_in, tmp_path_factory, prefix, tenant, INTEGRATION, operation)
    print(f"\ncalibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_calibration_sees_every_step_the_cases_kill_after(calibration: dict[str, dict[str, Any]]) -> None:
    # The step cases kill after event 1..N; an operation that makes fewer changes would let its last cases
    # run clean, and one that makes more would leave a step untested.
    assert {op: c["events"] for op, c in calibration.items()} == EVENTS


def kill_point(operation: str, mode: str, value: int, calibration: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """(crash_runner mode, value): a step the calibration saw, or a moment inside the calibrated time."""
    if mode == "after-event":
        assert value <= calibration[operation]["events"], (operation, value, calibration[operation])
        return mode, value
    share = random.Random(f"{SEED}-{operation}-{value}").uniform(EARLIEST, LATEST)
    return "after-ms", max(1, round(share * calibration[operation]["ms"]))


@pytest.mark.parametrize(("operation", "mode", "value"), CASES)
def test_a_killed_operation_converges_when_run_again(
    stand_in: StandIn, calibration: dict[str, dict[str, Any]], operation: str, mode: str, value: int
) -> None:
    prefix = f"k{uuid.uuid4().hex[:10]}"
    tenant = stand_in.home_tenant_id
    neighbour = f"n{uuid.uuid4().hex[:10]}"
    assert cli(stand_in, neighbour, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0
    neighbour_before = registration(stand_in, neighbour)
    if operation != "onboard":
        assert cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0

    point = kill_point(operation, mode, value, calibration)
    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, *map(str, point))
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )

    # The caller retries the same operation; a follow-up onboard/rotate sweeps up what is left.
    again = cli(stand_in, prefix, *{
        "onboard": ["onboard"], "rotate": ["rotate", "--retire-immediately"], "offboard": ["offboard", "--purge-application"],
    }[operation], "--tenant", tenant, "--integration", INTEGRATION)  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    if operation == "offboard":
        apps, secrets = registration(stand_in, prefix)
        assert apps == [] and secrets == {}
    else:
        if operation == "onboard":  # a second pass removes orphans (ORPHAN_GRACE_MINUTES=0)
            assert cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0
        assert_converged(stand_in, prefix)
    assert registration(stand_in, neighbour) == neighbour_before  # nothing of another registration touched


# --- a certificate registration: onboarding and rotation killed at every change ---

CERTIFICATE_EVENTS = {
    "onboard-certificate": CERTIFICATE_ONBOARD_EVENTS,
    "rotate-certificate": CERTIFICATE_ROTATE_EVENTS,
}
CERTIFICATE_CASES = every_point(CERTIFICATE_EVENTS, CERTIFICATE_RANDOM_POINTS)
CERTIFICATE_COMMANDS = {
    "onboard-certificate": ["onboard", "--credential-type", "certificate"],
    "rotate-certificate": ["rotate", "--retire-immediately"],
}


def certificate_name(stand_in: StandIn, prefix: str) -> str:
    return f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-client-certificate"


def key_id_of(cer: bytes) -> str:
    """The keyId this service gives a certificate on an app (derived from its SHA-256 thumbprint)."""
    return Registry.key_credential_id(x509.load_der_x509_certificate(cer).fingerprint(hashes.SHA256()).hex())


class StoredCertificates:
    """What Key Vault holds of a registration's certificate, read as the app's identity reads it."""

    def __init__(self, stand_in: StandIn, prefix: str) -> None:
        os.environ.update(stand_in.identity_env())
        self.stand_in, self.name = stand_in, certificate_name(stand_in, prefix)
        options: dict[str, Any] = {"verify_challenge_resource": False, "connection_verify": stand_in.ca_bundle}
        self.certificates = CertificateClient(stand_in.vault_url, ManagedIdentityCredential(), **options)
        self.secrets = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), **options)

    def latest(self) -> tuple[str, dict[str, str], bytes] | None:
        """(its key id on the app, its tags, its PKCS#12) of the latest version; None when none is stored."""
        try:
            found = self.certificates.get_certificate(self.name)
        except ResourceNotFoundError:
            return None
        assert found.cer is not None and found.properties is not None
        bundle = self.secrets.get_secret(self.name, found.properties.version).value
        assert bundle is not None
        return key_id_of(bytes(found.cer)), dict(found.properties.tags or {}), base64.b64decode(bundle)

    def held_key_ids(self) -> set[str]:
        """The key ids of every version Key Vault holds under the registration's name."""
        versions = self.certificates.list_properties_of_certificate_versions(self.name)
        return {key_id_of(bytes(self.certificates.get_certificate_version(self.name, str(v.version)).cer or b""))
                for v in versions}  # fmt: skip

    def staged(self) -> bool:
        try:
            self.certificates.get_certificate(f"{self.name}-staged")
        except ResourceNotFoundError:
            return False
        return True


def certificate_roles(stand_in: StandIn, client_id: str, pkcs12: bytes) -> set[str] | None:
    """The roles a consumer signing with this certificate gets (None if Entra refuses it)."""
    credential = CertificateCredential(
        stand_in.home_tenant_id, client_id, certificate_data=pkcs12, authority=stand_in.authority,
        disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    try:
        roles: set[str] = set()
        for scope in SCOPES:
            roles |= set(jwt.decode(credential.get_token(scope).token, options={"verify_signature": False})["roles"])
        return roles
    except ClientAuthenticationError:
        return None


def assert_verified_only_if_proven(stand_in: StandIn, prefix: str) -> None:
    """Wherever the kill left it: a certificate tagged verified signs in with every granted role."""
    latest = StoredCertificates(stand_in, prefix).latest()
    apps, _ = registration(stand_in, prefix)
    if latest is not None and latest[1].get("verified") == "true":
        [app] = apps
        assert certificate_roles(stand_in, str(app["appId"]), latest[2]) == ROLES, latest[1]


def assert_certificate_converged(stand_in: StandIn, prefix: str) -> None:
    apps, secrets = registration(stand_in, prefix)
    assert len(apps) == 1, apps
    [app] = apps
    service_principals = stand_in.state()["tenants"][stand_in.home_tenant_id]["servicePrincipals"]
    assert [sp["appId"] for sp in service_principals].count(app["appId"]) == 1
    ids = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-"
    assert {f"{ids}client-id", f"{ids}tenant-id"} <= set(secrets), sorted(secrets)
    assert f"{ids}client-secret" not in secrets and app["passwordKeyIds"] == []  # a certificate registration
    stored = StoredCertificates(stand_in, prefix)
    latest = stored.latest()
    assert latest is not None, "no certificate stored"
    key_id, tags, pkcs12 = latest
    assert tags.get("verified") == "true", tags
    on_app = set(app["keyCredentialIds"])  # type: ignore[call-overload]
    # Exactly one current key, the latest certificate's; besides it at most its predecessor (in its grace period),
    # and nothing Key Vault does not hold (a key nobody can sign with).
    assert key_id in on_app, (on_app, tags)
    assert on_app <= {key_id, tags.get("previous-key-id")}, (on_app, tags)
    assert on_app <= stored.held_key_ids(), on_app
    assert not stored.staged(), "a staging certificate outlived a completed rotation"
    assert certificate_roles(stand_in, str(app["appId"]), pkcs12) == ROLES


@pytest.fixture(scope="module")
def certificate_calibration(
    stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """The certificate onboarding, then a rotation of what it made, each run through once."""
    prefix, tenant = f"c{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    measured = {}
    for operation in CERTIFICATE_EVENTS:
        measured[operation] = calibrate(stand_in, tmp_path_factory, prefix, tenant, INTEGRATION, operation)
    print(f"\ncertificate calibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_certificate_calibration_sees_every_step_the_cases_kill_after(
    certificate_calibration: dict[str, dict[str, Any]],
) -> None:
    assert {op: c["events"] for op, c in certificate_calibration.items()} == CERTIFICATE_EVENTS, certificate_calibration


def certificate_registration(stand_in: StandIn, prefix: str) -> tuple[object, ...]:
    return registration(stand_in, prefix), StoredCertificates(stand_in, prefix).latest()


@pytest.fixture(scope="module")
def certificate_neighbour(stand_in: StandIn) -> tuple[str, tuple[object, ...]]:
    """A certificate registration beside every case's (one for all: each case checks it is as it was made)."""
    neighbour = f"n{uuid.uuid4().hex[:10]}"
    target = ["--tenant", stand_in.home_tenant_id, "--integration", INTEGRATION]
    assert cli(stand_in, neighbour, *CERTIFICATE_COMMANDS["onboard-certificate"], *target).returncode == 0
    return neighbour, certificate_registration(stand_in, neighbour)


@pytest.mark.parametrize(("operation", "mode", "value"), CERTIFICATE_CASES)
def test_a_killed_certificate_operation_converges_when_run_again(
    stand_in: StandIn,
    certificate_calibration: dict[str, dict[str, Any]],
    certificate_neighbour: tuple[str, tuple[object, ...]],
    operation: str,
    mode: str,
    value: int,
) -> None:
    prefix, tenant = f"k{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    target = ["--tenant", tenant, "--integration", INTEGRATION]
    if operation == "rotate-certificate":
        assert cli(stand_in, prefix, *CERTIFICATE_COMMANDS["onboard-certificate"], *target).returncode == 0

    point = kill_point(operation, mode, value, certificate_calibration)
    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, *map(str, point))
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {certificate_calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )
    assert_verified_only_if_proven(stand_in, prefix)

    again = cli(stand_in, prefix, *CERTIFICATE_COMMANDS[operation], *target)
    assert again.returncode == 0, again.stderr[-2000:]
    if operation == "onboard-certificate":  # a second pass removes orphans (ORPHAN_GRACE_MINUTES=0)
        assert cli(stand_in, prefix, *CERTIFICATE_COMMANDS[operation], *target).returncode == 0
    assert_certificate_converged(stand_in, prefix)
    neighbour, neighbour_before = certificate_neighbour
    assert certificate_registration(stand_in, neighbour) == neighbour_before  # nothing of another registration touched


# --- the secretless type: the connector and its trusts killed before the admin consents, the proof after ---

# connector created, the vendor backend trusted, this service trusted (to prove the consent)
FEDERATED_SETUP_EVENTS = 3
# Client ID stored (registration ready), Tenant ID stored, consent proven (a token through the exchange held every role)
FEDERATED_PROOF_EVENTS = 4
FEDERATED_EVENTS = {"onboard-federated": FEDERATED_SETUP_EVENTS, "prove-federated": FEDERATED_PROOF_EVENTS}
FEDERATED_CASES = every_point(FEDERATED_EVENTS, CERTIFICATE_RANDOM_POINTS)
# The vendor backend's workload identity: any identity but this service's own, so the connector trusts two.
BACKEND_SUBJECT = "7d1c4a52-3b8e-4f0a-9e6d-2c5b8a1f4e37"
FEDERATED = ["onboard", "--credential-type", "federated", "--integration", INTEGRATION]
EXCHANGE_AUDIENCE = "api://AzureADTokenExchange/.default"


def customer_tenant(stand_in: StandIn) -> str:
    """A customer's tenant: the connector lives in the home tenant and is consented in this one."""
    return stand_in.customer_tenant_ids[0]


def connectors(stand_in: StandIn, prefix: str) -> list[dict[str, Any]]:
    home = stand_in.state()["tenants"][stand_in.home_tenant_id]
    return [a for a in home["applications"] if a["uniqueName"] == f"{prefix}-connector-{INTEGRATION}"]


def customer_admin_consents(stand_in: StandIn, prefix: str, tenant: str) -> None:
    """What the customer's admin does at the consent URL: the connector's principal and its roles in their tenant."""
    [connector] = connectors(stand_in, prefix)
    profile = load_catalog().require(INTEGRATION)
    roles = {p.resource_app_id: list(p.roles) for p in profile.permissions}
    stand_in.admin("POST", f"/tenants/{tenant}/consent", {"appId": connector["appId"], "roles": roles})


def stored_ids(stand_in: StandIn, prefix: str, tenant: str) -> dict[str, str]:
    """The registration's records in Key Vault, by kind, with their values (ids only: nothing secret is stored)."""
    os.environ.update(stand_in.identity_env())
    vault = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=stand_in.ca_bundle)  # fmt: skip
    base = f"{prefix}-{tenant}-{INTEGRATION}-"
    return {
        str(p.name).removeprefix(base): str(vault.get_secret(str(p.name)).value)
        for p in vault.list_properties_of_secrets()
        if str(p.name).startswith(base)
    }


def exchange_roles(stand_in: StandIn, tenant: str, client_id: str) -> set[str] | None:
    """The roles a workload the connector trusts gets in the customer's tenant (None if Entra refuses)."""
    os.environ.update(stand_in.identity_env())
    identity = ManagedIdentityCredential()  # this service's identity: the connector's second trust
    credential = ClientAssertionCredential(
        tenant, client_id, lambda: identity.get_token(EXCHANGE_AUDIENCE).token, authority=stand_in.authority,
        disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    try:
        roles: set[str] = set()
        for scope in SCOPES:
            claims = jwt.decode(credential.get_token(scope).token, options={"verify_signature": False})
            assert claims["tid"] == tenant, claims
            roles |= set(claims.get("roles", []))
        return roles
    except ClientAuthenticationError:
        return None


def assert_ids_stored_only_if_proven(stand_in: StandIn, prefix: str, tenant: str) -> None:
    """Wherever the kill left it: a stored Client ID is a connector consented with every role."""
    stored = stored_ids(stand_in, prefix, tenant)
    assert set(stored) <= {"client-id", "tenant-id"}, stored
    if "client-id" in stored:
        assert exchange_roles(stand_in, tenant, stored["client-id"]) == ROLES, stored


def assert_federated_converged(stand_in: StandIn, prefix: str, tenant: str) -> None:
    [connector] = connectors(stand_in, prefix)
    assert connector["signInAudience"] == "AzureADMultipleOrgs", connector
    assert connector["passwordKeyIds"] == [] and connector["keyCredentialIds"] == []  # nothing to leak
    identity = str(stand_in.info["managed_identity_object_id"])
    trusted = sorted(c["subject"] for c in connector["federatedCredentials"])
    assert trusted == sorted([BACKEND_SUBJECT, identity]), connector["federatedCredentials"]
    principals = stand_in.state()["tenants"][tenant]["servicePrincipals"]
    assert [sp["appId"] for sp in principals].count(connector["appId"]) == 1
    assert stored_ids(stand_in, prefix, tenant) == {"client-id": connector["appId"], "tenant-id": tenant}
    assert exchange_roles(stand_in, tenant, connector["appId"]) == ROLES


@pytest.fixture(scope="module")
def federated_calibration(
    stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """The connector set up (pending the admin's consent), the admin consents, then the proof: each run through."""
    prefix, tenant = f"c{uuid.uuid4().hex[:10]}", customer_tenant(stand_in)
    measured = {}
    for operation, exit_code in (("onboard-federated", 3), ("prove-federated", 0)):
        measured[operation] = calibrate(stand_in, tmp_path_factory, prefix, tenant, INTEGRATION, operation, exit_code,
                                        CONNECTOR_TRUST_SUBJECT=BACKEND_SUBJECT)  # fmt: skip
        if operation == "onboard-federated":
            customer_admin_consents(stand_in, prefix, tenant)
    print(f"\nfederated calibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_federated_calibration_sees_every_step_the_cases_kill_after(
    federated_calibration: dict[str, dict[str, Any]],
) -> None:
    assert {op: c["events"] for op, c in federated_calibration.items()} == FEDERATED_EVENTS, federated_calibration


def federated_registration(stand_in: StandIn, prefix: str, tenant: str) -> tuple[object, ...]:
    return connectors(stand_in, prefix), stored_ids(stand_in, prefix, tenant)


@pytest.fixture(scope="module")
def federated_neighbour(stand_in: StandIn) -> tuple[str, tuple[object, ...]]:
    """A federated registration (its own connector) beside every case's, consented and proven."""
    neighbour, tenant = f"n{uuid.uuid4().hex[:10]}", customer_tenant(stand_in)
    trust = {"CONNECTOR_TRUST_SUBJECT": BACKEND_SUBJECT}
    assert cli(stand_in, neighbour, *FEDERATED, "--tenant", tenant, **trust).returncode == 3  # pending consent
    customer_admin_consents(stand_in, neighbour, tenant)
    assert cli(stand_in, neighbour, *FEDERATED, "--tenant", tenant, **trust).returncode == 0
    return neighbour, federated_registration(stand_in, neighbour, tenant)


@pytest.mark.parametrize(("operation", "mode", "value"), FEDERATED_CASES)
def test_a_killed_federated_onboarding_converges_when_run_again(
    stand_in: StandIn,
    federated_calibration: dict[str, dict[str, Any]],
    federated_neighbour: tuple[str, tuple[object, ...]],
    operation: str,
    mode: str,
    value: int,
) -> None:
    prefix, tenant = f"k{uuid.uuid4().hex[:10]}", customer_tenant(stand_in)
    trust = {"CONNECTOR_TRUST_SUBJECT": BACKEND_SUBJECT}
    if operation == "prove-federated":  # the connector is set up and the admin has consented
        assert cli(stand_in, prefix, *FEDERATED, "--tenant", tenant, **trust).returncode == 3
        customer_admin_consents(stand_in, prefix, tenant)

    point = kill_point(operation, mode, value, federated_calibration)
    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, *map(str, point), **trust)
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {federated_calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )
    assert_ids_stored_only_if_proven(stand_in, prefix, tenant)
    assert len(connectors(stand_in, prefix)) <= 1

    if operation == "onboard-federated":  # the rerun finishes the connector and waits for the admin again
        pending = cli(stand_in, prefix, *FEDERATED, "--tenant", tenant, **trust)
        assert pending.returncode == 3, pending.stderr[-2000:]
        assert stored_ids(stand_in, prefix, tenant) == {}
        customer_admin_consents(stand_in, prefix, tenant)
    again = cli(stand_in, prefix, *FEDERATED, "--tenant", tenant, **trust)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_federated_converged(stand_in, prefix, tenant)
    neighbour, neighbour_before = federated_neighbour
    assert federated_registration(stand_in, neighbour, tenant) == neighbour_before


# --- a certificate the vendor issued: its first onboarding, and the vendor's replacement of it ---

# application, its record stored, service principal, 2 grants, its key added, client id and tenant id stored,
# registration ready
VENDOR_ONBOARD_EVENTS = 9
# the new certificate's record stored (naming the previous key), its key added beside the previous one
VENDOR_REPLACE_EVENTS = 2
VENDOR_EVENTS = {
    "onboard-vendor-certificate": VENDOR_ONBOARD_EVENTS,
    "replace-vendor-certificate": VENDOR_REPLACE_EVENTS,
}
VENDOR_CASES = every_point(VENDOR_EVENTS, CERTIFICATE_RANDOM_POINTS)


class VendorFiles:
    """Certificates the vendor issued, with their keys, and the public halves as files it hands over."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def issue(self) -> tuple[VendorCertificate, str]:
        certificate = VendorCertificate(datetime.now(UTC), days=365)
        path = self.directory / f"{uuid.uuid4().hex}.pem"
        path.write_text(certificate.pem)
        return certificate, str(path)


@pytest.fixture(scope="module")
def vendor_files(tmp_path_factory: pytest.TempPathFactory) -> VendorFiles:
    return VendorFiles(tmp_path_factory.mktemp("vendor"))


def vendor_onboard(stand_in: StandIn, prefix: str, path: str) -> subprocess.CompletedProcess[str]:
    args = ["--tenant", stand_in.home_tenant_id, "--integration", INTEGRATION, "--certificate-file", path]
    return cli(stand_in, prefix, "onboard", "--credential-type", "certificate", *args)


def vendor_record(stand_in: StandIn, prefix: str) -> dict[str, str] | None:
    """The tags of the latest version of the registration's record of the vendor's certificate."""
    _, secrets = registration(stand_in, prefix)
    record = secrets.get(f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-vendor-certificate")
    return None if record is None else dict(record["versions"][-1]["tags"])  # type: ignore[index]


def vendor_key_id(certificate: VendorCertificate) -> str:
    return Registry.key_credential_id(certificate.certificate.fingerprint(hashes.SHA256()).hex())


def vendor_roles(stand_in: StandIn, client_id: str, certificate: VendorCertificate) -> set[str] | None:
    """The roles the vendor's own services get signing with the certificate's key (None if Entra refuses it)."""
    credential = CertificateCredential(
        stand_in.home_tenant_id, client_id, certificate_data=(certificate.key_pem + certificate.pem).encode(),
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    try:
        roles: set[str] = set()
        for scope in SCOPES:
            roles |= set(jwt.decode(credential.get_token(scope).token, options={"verify_signature": False})["roles"])
        return roles
    except ClientAuthenticationError:
        return None


def assert_vendor_converged(
    stand_in: StandIn, prefix: str, current: VendorCertificate, previous: VendorCertificate | None
) -> None:
    apps, secrets = registration(stand_in, prefix)
    [app] = apps
    service_principals = stand_in.state()["tenants"][stand_in.home_tenant_id]["servicePrincipals"]
    assert [sp["appId"] for sp in service_principals].count(app["appId"]) == 1
    ids = f"{prefix}-{stand_in.home_tenant_id}-{INTEGRATION}-"
    assert set(secrets) == {f"{ids}client-id", f"{ids}tenant-id", f"{ids}vendor-certificate"}, sorted(secrets)
    assert app["passwordKeyIds"] == []  # no secret beside the vendor's certificate
    tags = vendor_record(stand_in, prefix)
    assert tags is not None
    assert tags["key-id"] == vendor_key_id(current) and tags["verified"] == "false", tags  # unproven: no assertion
    # The current key, and within its grace period the one it replaced: the vendor's services signing with either
    # keep working; nothing else is on the app.
    expected = {vendor_key_id(current)} | ({vendor_key_id(previous)} if previous else set())
    assert set(app["keyCredentialIds"]) == expected, (app["keyCredentialIds"], tags)  # type: ignore[call-overload]
    assert tags.get("previous-key-id") == (vendor_key_id(previous) if previous else None), tags
    for certificate in (current, previous) if previous else (current,):
        assert vendor_roles(stand_in, str(app["appId"]), certificate) == ROLES


@pytest.fixture(scope="module")
def vendor_calibration(
    stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory, vendor_files: VendorFiles
) -> Iterator[dict[str, dict[str, Any]]]:
    """The vendor's first certificate onboarded, then a second one replacing it: each run through once."""
    prefix, tenant = f"c{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    measured = {}
    for operation in VENDOR_EVENTS:
        _, path = vendor_files.issue()
        measured[operation] = calibrate(stand_in, tmp_path_factory, prefix, tenant, INTEGRATION, operation,
                                        CRASH_CERTIFICATE_FILE=path)  # fmt: skip
    print(f"\nvendor certificate calibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_vendor_calibration_sees_every_step_the_cases_kill_after(vendor_calibration: dict[str, dict[str, Any]]) -> None:
    assert {op: c["events"] for op, c in vendor_calibration.items()} == VENDOR_EVENTS, vendor_calibration


@pytest.mark.parametrize(("operation", "mode", "value"), VENDOR_CASES)
def test_a_killed_vendor_certificate_onboarding_converges_when_run_again(
    stand_in: StandIn,
    vendor_calibration: dict[str, dict[str, Any]],
    vendor_files: VendorFiles,
    certificate_neighbour: tuple[str, tuple[object, ...]],
    operation: str,
    mode: str,
    value: int,
) -> None:
    prefix, tenant = f"k{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    previous = None
    if operation == "replace-vendor-certificate":
        previous, first = vendor_files.issue()
        assert vendor_onboard(stand_in, prefix, first).returncode == 0
    current, path = vendor_files.issue()

    point = kill_point(operation, mode, value, vendor_calibration)
    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, *map(str, point), CRASH_CERTIFICATE_FILE=path)
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {vendor_calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )
    apps, _ = registration(stand_in, prefix)
    if previous is not None:  # mid-replacement, the vendor's services signing with the previous key never stop
        [app] = apps
        assert vendor_roles(stand_in, str(app["appId"]), previous) == ROLES
    # Recorded before it goes on the app: no key of the vendor's on the app that Key Vault does not record.
    tags = vendor_record(stand_in, prefix) or {}
    for app in apps:
        assert set(app["keyCredentialIds"]) <= {tags.get("key-id"), tags.get("previous-key-id")}, (app, tags)  # type: ignore[call-overload]

    again = vendor_onboard(stand_in, prefix, path)
    assert again.returncode == 0, again.stderr[-2000:]
    assert vendor_onboard(stand_in, prefix, path).returncode == 0  # a second pass removes orphans
    assert_vendor_converged(stand_in, prefix, current, previous)
    neighbour, neighbour_before = certificate_neighbour
    assert certificate_registration(stand_in, neighbour) == neighbour_before  # nothing of another registration touched


# --- add-ons named and dropped on a registration's app ---

CONNECTION = "m365-defender"  # the connection that offers add-ons
ADD_ONS = "defender-xdr,cloud-apps"  # two resource APIs beside the base one
# the app's permissions updated, 3 grants added (or revoked), Client ID and Tenant ID stored with the new add-ons tag
ADD_ON_EVENTS = {"add-add-ons": 6, "drop-add-ons": 6}
ADD_ON_CASES = every_point(ADD_ON_EVENTS, CERTIFICATE_RANDOM_POINTS)
ADD_ON_SCOPES = {
    "https://graph.microsoft.com/.default": None,
    "https://api.security.microsoft.com/.default": "defender-xdr",
    "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default": "cloud-apps",
}


def add_ons_of(operation: str) -> tuple[str, str]:
    """(the add-ons the registration has before, the ones the operation names)."""
    return ("", ADD_ONS) if operation == "add-add-ons" else (ADD_ONS, "")


def connection_cli(stand_in: StandIn, prefix: str, add_ons: str) -> subprocess.CompletedProcess[str]:
    target = ["--tenant", stand_in.home_tenant_id, "--integration", CONNECTION]
    return cli(stand_in, prefix, "onboard", *target, "--add-ons", add_ons)


def connection_roles(stand_in: StandIn, prefix: str) -> dict[str | None, set[str]]:
    """The roles a token from the stored secret holds, by the add-on that brings them (None: the base)."""
    name = f"{prefix}-{stand_in.home_tenant_id}-{CONNECTION}-client-secret"
    os.environ.update(stand_in.identity_env())
    vault = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
                         connection_verify=stand_in.ca_bundle)  # fmt: skip
    secret = vault.get_secret(name)
    credential = ClientSecretCredential(
        stand_in.home_tenant_id, (secret.properties.tags or {})["client-id"], str(secret.value),
        authority=stand_in.authority, disable_instance_discovery=True, connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    return {
        add_on: set(jwt.decode(credential.get_token(scope).token, options={"verify_signature": False}).get("roles", []))
        for scope, add_on in ADD_ON_SCOPES.items()
    }


def recorded_add_ons(stand_in: StandIn, prefix: str) -> str | None:
    _, secrets = registration(stand_in, prefix, CONNECTION)
    ids = secrets[f"{prefix}-{stand_in.home_tenant_id}-{CONNECTION}-client-id"]
    return ids["versions"][-1]["tags"].get("add-ons")  # type: ignore[index,no-any-return]


@pytest.fixture(scope="module")
def add_on_calibration(
    stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    """A registration with no add-ons given two, then the two dropped: each change run through once."""
    prefix, tenant = f"c{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    assert connection_cli(stand_in, prefix, "").returncode == 0
    measured = {}
    for operation in ADD_ON_EVENTS:
        measured[operation] = calibrate(stand_in, tmp_path_factory, prefix, tenant, CONNECTION, "change-add-ons",
                                        CRASH_ADD_ONS=add_ons_of(operation)[1])  # fmt: skip
    print(f"\nadd-on calibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_add_on_calibration_sees_every_step_the_cases_kill_after(add_on_calibration: dict[str, dict[str, Any]]) -> None:
    assert {op: c["events"] for op, c in add_on_calibration.items()} == ADD_ON_EVENTS, add_on_calibration


@pytest.mark.parametrize(("operation", "mode", "value"), ADD_ON_CASES)
def test_a_killed_add_on_change_converges_when_run_again(
    stand_in: StandIn, add_on_calibration: dict[str, dict[str, Any]], operation: str, mode: str, value: int
) -> None:
    """Killed between the grants and the Key Vault write (or anywhere): the same PUT again leaves the app holding
    exactly the base and the named add-ons, the Client ID recording them, and the stored secret working."""
    prefix, tenant = f"k{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id
    before, after = add_ons_of(operation)
    assert connection_cli(stand_in, prefix, before).returncode == 0
    point = kill_point(operation, mode, value, add_on_calibration)
    killed = run(stand_in, prefix, "change-add-ons", tenant, CONNECTION, *map(str, point), CRASH_ADD_ONS=after)
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {add_on_calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )
    again = connection_cli(stand_in, prefix, after)
    assert again.returncode == 0, again.stderr[-2000:]
    apps, secrets = registration(stand_in, prefix, CONNECTION)
    assert len(apps) == 1 and len(secrets) == 3, (apps, sorted(secrets))
    assert recorded_add_ons(stand_in, prefix) == (after or None)
    roles = connection_roles(stand_in, prefix)
    assert roles["defender-xdr"] == ({"Incident.Read.All", "AdvancedHunting.Read.All"} if after else set())
    assert roles["cloud-apps"] == ({"investigation.read"} if after else set())
    assert "AuditLog.Read.All" in roles[None] and "User.RevokeSessions.All" not in roles[None]


# --- a Sentinel registration given its workspace role ---

# application, service principal, secret created, 2 grants, 3 secrets stored, registration ready, the workspace role
# assigned, then the workspace id and name stored
WORKSPACE_EVENTS = {"onboard-workspace": 12}
ROLE_ASSIGNED = 10  # the change after which a kill leaves the role on the workspace and nothing of it in Key Vault
WORKSPACE_CASES = [
    pytest.param(op, mode, value, marks=() if (mode, value) == ("after-event", ROLE_ASSIGNED) else param.marks)
    for param in every_point(WORKSPACE_EVENTS, CERTIFICATE_RANDOM_POINTS)
    for op, mode, value in [param.values]
]
SENTINEL_ROLE_IDS = "8d289c81-5878-46d4-8554-54e1e3d8b5cb, 3e150937-b8fe-4cfb-8069-0eaf05ecd056"


def granted_workspace(stand_in: StandIn) -> dict[str, Any]:
    """A workspace whose customer's admin granted this service what docs/sentinel.md asks."""
    from shared.usecases.workspace_access import CONDITION, RBAC_ADMINISTRATOR

    unique = uuid.uuid4().hex[:8]
    workspace: dict[str, Any] = stand_in.admin("POST", "/workspaces", {
        "tenantId": stand_in.home_tenant_id, "subscriptionId": str(uuid.uuid5(uuid.NAMESPACE_URL, "crash")),
        "resourceGroup": f"rg-{unique}", "name": f"law-{unique}",
    })  # fmt: skip
    stand_in.admin("POST", "/roleAssignments", {
        "scope": workspace["id"], "roleDefinitionId": RBAC_ADMINISTRATOR, "principalType": "ServicePrincipal",
        "principalId": str(stand_in.info["managed_identity_object_id"]),
        "condition": CONDITION.format(roles=SENTINEL_ROLE_IDS),
    })  # fmt: skip
    return workspace


def sentinel_roles_on(stand_in: StandIn, workspace: dict[str, Any]) -> list[dict[str, Any]]:
    listed = stand_in.admin("GET", f"/roleAssignments?scope={workspace['id']}")["value"]
    return [
        a for a in listed if not a["properties"]["roleDefinitionId"].endswith("f58310d9-a9f6-439a-9e8d-f62e7b41a168")
    ]


@pytest.fixture(scope="module")
def workspace_calibration(
    stand_in: StandIn, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, dict[str, Any]]]:
    prefix, workspace = f"c{uuid.uuid4().hex[:10]}", granted_workspace(stand_in)
    measured = {"onboard-workspace": calibrate(stand_in, tmp_path_factory, prefix, stand_in.home_tenant_id,
                                               INTEGRATION, "onboard-workspace", CRASH_WORKSPACE=workspace["id"])}  # fmt: skip
    print(f"\nworkspace calibration: {measured}; CRASH_SEED={SEED}")
    yield measured


def test_workspace_calibration_sees_every_step_the_cases_kill_after(
    workspace_calibration: dict[str, dict[str, Any]],
) -> None:
    measured = workspace_calibration["onboard-workspace"]
    assert measured["events"] == WORKSPACE_EVENTS["onboard-workspace"], measured
    assert measured["names"][ROLE_ASSIGNED - 1] == "workspace.role.assigned", measured


@pytest.mark.parametrize(("operation", "mode", "value"), WORKSPACE_CASES)
def test_a_killed_workspace_onboarding_converges_when_run_again(
    stand_in: StandIn, workspace_calibration: dict[str, dict[str, Any]], operation: str, mode: str, value: int
) -> None:
    """Killed anywhere, notably between the role assignment and the Key Vault write: the same PUT again leaves one
    Sentinel role on the workspace for the app's service principal, recorded in Key Vault, and proven."""
    prefix, tenant, workspace = f"k{uuid.uuid4().hex[:10]}", stand_in.home_tenant_id, granted_workspace(stand_in)
    point = kill_point(operation, mode, value, workspace_calibration)
    killed = run(stand_in, prefix, operation, tenant, INTEGRATION, *map(str, point), CRASH_WORKSPACE=workspace["id"])
    assert killed.returncode == -signal.SIGKILL, (
        f"not killed at {point} (CRASH_SEED={SEED}, calibration {workspace_calibration[operation]}): "
        f"exit {killed.returncode}\n{killed.stderr[-2000:]}"
    )
    again = cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION,
                "--workspace", workspace["id"])  # fmt: skip
    assert again.returncode == 0, again.stderr[-2000:]
    assert "assigned, proven by a query as the app" in again.stdout, again.stdout[-2000:]
    assert cli(stand_in, prefix, "onboard", "--tenant", tenant, "--integration", INTEGRATION).returncode == 0
    assert_converged(stand_in, prefix, records=5)  # the three, and the workspace id and name
    [app] = registration(stand_in, prefix)[0]
    principals = stand_in.state()["tenants"][tenant]["servicePrincipals"]
    [principal] = [sp["id"] for sp in principals if sp["appId"] == app["appId"]]
    [role] = sentinel_roles_on(stand_in, workspace)
    assert role["properties"]["principalId"] == principal
    records = {n: v for n, v in stand_in.state()["vault"]["secrets"].items() if n.startswith(f"{prefix}-")}
    recorded = records[f"{prefix}-{tenant}-{INTEGRATION}-workspace-id"]["versions"][-1]["tags"]
    assert recorded["role-assignment-id"] == role["id"], (recorded, role)
