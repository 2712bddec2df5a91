"""Races on one registration: PUT against DELETE, and the timer, the event and an on-demand rotate at once;
for a certificate registration, two PUTs at once, a PUT against an on-demand rotation, and the timer
against Key Vault's certificate event, with a consumer signing in with the stored certificate throughout.

Each race is made to overlap: a latency rule holds the winner inside its writes long enough for every
other caller to arrive while it works, so only the registration's lock keeps them apart."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from emulator.launcher import StandIn
from shared import bootstrap
from shared.domain.registry import Registry
from shared.settings import load_settings
from shared.usecases.rotation import RotationResult
from tests.azurite import Azurite
from tests.functions.conftest import FUNCTIONS, Api, app_environment, body_of
from tests.functions.queue_host import sweep_and_work
from tests.functions.test_certificates import VendorCertificate, certificate_name, pkcs12, signs_in, vendor_body
from tests.functions.test_rotation import DAY, StandInClock, near_expiry, secret_name, stored, works

ROUNDS = int(os.environ.get("RACE_ROUNDS", "4"))  # scripts/long: 12
# The winner's writes are slow, so every racer reaches the lock while the winner still holds it.
SLOW_WRITES = [
    {"kind": "latency", "service": "graph", "method": "POST", "path": "addPassword", "latency_ms": 400},
    {"kind": "latency", "service": "graph", "method": "DELETE", "latency_ms": 300},
    {"kind": "latency", "service": "vault", "method": "PUT", "latency_ms": 150},
    {"kind": "latency", "service": "vault", "method": "DELETE", "latency_ms": 700},
]


def live_secrets(api: Api) -> list[str]:
    prefix = api.services.settings.name_prefix
    return sorted(n for n in api.stand_in.state()["vault"]["secrets"] if n.startswith(prefix))


def service_principals_of(api: Api, app_id: str) -> int:
    principals = api.stand_in.state()["tenants"][api.stand_in.home_tenant_id]["servicePrincipals"]
    return [sp["appId"] for sp in principals].count(app_id)


async def test_put_racing_delete_ends_either_fully_onboarded_or_fully_gone(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    await api.put(tenant, "sentinel")
    api.stand_in.set_faults(SLOW_WRITES)
    endings = []
    for round_ in range(ROUNDS):
        put = api.put(tenant, "sentinel")
        delete = api.call("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", params)
        if round_ % 2:  # either may reach the lock first
            put_response, delete_response = await asyncio.gather(put, delete)
        else:
            delete_response, put_response = await asyncio.gather(delete, put)
        assert put_response.status_code in (200, 201), body_of(put_response)
        assert delete_response.status_code in (200, 404), body_of(delete_response)
        apps, live = api.apps(), live_secrets(api)
        if apps or live:  # the PUT went last: all of it there, and consistent
            [app] = apps
            assert len(live) == 3 and len(app["passwordKeyIds"]) == 1, (round_, app, live)
            assert service_principals_of(api, app["appId"]) == 1
            secret, tags = stored(api, "sentinel")
            assert tags["client-id"] == app["appId"] and tags["key-id"] in app["passwordKeyIds"]
            assert works(api, app["appId"], secret)
            # It went last, after the DELETE had removed everything: it created the app again, and its answer
            # describes what is there.
            assert put_response.status_code == 201, (round_, body_of(put_response))
            answered = body_of(put_response)
            assert answered["application"]["clientId"] == app["appId"], (round_, answered, app)
            assert answered["credential"]["keyId"] == tags["key-id"], (round_, answered, tags)
            endings.append("onboarded")
        else:  # the DELETE went last: it removed what the PUT had made, and nothing of it is left
            assert delete_response.status_code == 200, (round_, body_of(delete_response))
            endings.append("gone")
        print(f"round {round_}: {endings[-1]}")
    fired = [rule["fired"] for rule in api.stand_in.admin("GET", "/faults")["rules"]]
    assert sum(fired) > 0, "the latency rules never slowed a write: the race was not widened"


# --- the timer, Key Vault's event and an on-demand rotate, all at once, on a registration that is due ---

caller: ContextVar[str] = ContextVar("caller", default="?")


@pytest.fixture
async def due_soon(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, StandInClock, dict[str, list[str]]]]:
    """Services on a stand-in whose directory clock can move, recording each caller's rotation result.

    No lock waits (LOCK_WAIT_SECONDS=0): a caller that finds the registration held answers `busy` at once,
    as the sweep always does. A waiting on-demand call would, by design, force a second rotation afterwards."""
    stand_in = clock_stand_in
    stand_in.clear_faults()
    app_environment(
        monkeypatch, stand_in, "q", azurite,
        SECRET_LIFETIME_DAYS="60", ROTATION_WINDOW_DAYS="30", ROTATION_GRACE_HOURS="48", LOCK_WAIT_SECONDS="0",
        CERTIFICATE_VALIDITY_MONTHS="2",
    )  # fmt: skip
    clock = StandInClock(stand_in)
    services = bootstrap.build(load_settings(), now=clock.now)
    actions: dict[str, list[str]] = {}
    rotate = services.rotation.rotate

    async def recording(*args: Any, **kwargs: Any) -> RotationResult:
        result = await rotate(*args, **kwargs)
        actions.setdefault(caller.get(), []).append(result.action.value)
        return result

    monkeypatch.setattr(services.rotation, "rotate", recording)
    bootstrap.override(services)
    try:
        yield Api(stand_in, services), clock, actions
    finally:
        bootstrap.override(None)
        await services.close()
        stand_in.clear_faults()


async def as_caller(name: str, work: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    caller.set(name)  # this task's own context: the sweep's workers inherit it
    return await work()


async def test_timer_event_and_on_demand_rotate_at_once_make_exactly_one_rotation(
    due_soon: tuple[Api, StandInClock, dict[str, list[str]]],
) -> None:
    api, clock, actions = due_soon
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    created = body_of(await api.put(tenant, "sentinel"))
    client_id = created["application"]["clientId"]
    api.stand_in.set_faults(SLOW_WRITES)
    name = secret_name(api, "sentinel")
    callers: dict[str, Callable[[], Awaitable[Any]]] = {
        "timer": sweep_and_work,  # the timer fans out; its worker rotates
        "event": lambda: FUNCTIONS["secret_near_expiry"](near_expiry(api, name)),
        "on-demand": lambda: api.call("rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", params),
    }
    winners = []
    for round_ in range(ROUNDS):
        clock.advance(31 * DAY)  # the stored secret has 29 of its 60 days left: inside the 30-day window
        before = stored(api, "sentinel")[1]["key-id"]
        versions_before = len(api.stand_in.state()["vault"]["secrets"][name]["versions"])
        [app] = api.apps()
        credentials_before = set(app["passwordKeyIds"])
        actions.clear()
        order = list(callers)[round_ % 3 :] + list(callers)[: round_ % 3]  # each starts first in turn
        results = dict(
            zip(order, await asyncio.gather(*(as_caller(c, callers[c]) for c in order)), strict=True)  # type: ignore[arg-type]
        )
        assert sorted(actions) == sorted(callers), actions  # every caller reached the rotation, once
        assert all(len(a) == 1 for a in actions.values()), actions
        acted = {c: a[0] for c, a in actions.items()}
        assert sorted(acted.values()).count("rotated") == 1, (round_, acted)
        assert set(acted.values()) <= {"rotated", "busy", "nothing-due", "waiting"}, (round_, acted)
        on_demand = results["on-demand"]
        assert on_demand.status_code == (200 if acted["on-demand"] == "rotated" else 409), body_of(on_demand)
        winners.append(next(c for c, a in acted.items() if a == "rotated"))

        [app] = api.apps()
        latest, tags = stored(api, "sentinel")
        # Exactly one new credential, the one stored; its predecessor stays through its grace period.
        assert tags["key-id"] != before and tags["previous-key-id"] == before
        assert set(app["passwordKeyIds"]) - credentials_before == {tags["key-id"]}, (round_, acted, app)
        assert before in app["passwordKeyIds"]
        assert len(api.stand_in.state()["vault"]["secrets"][name]["versions"]) == versions_before + 1
        assert works(api, client_id, latest)
        print(f"round {round_}: {acted}")
    print(f"winners: {winners}")


# --- certificate registrations: the same races, converging on one certificate and one key, with no gap ---

CERTIFICATE = json.dumps({"credentialType": "certificate"}).encode()
CERTIFICATE_ROUNDS = 2
# Key Vault's certificate creation and Graph's keyCredentials PATCH are the certificate flows' slow writes.
SLOW_CERTIFICATE_WRITES = [
    {"kind": "latency", "service": "graph", "method": "PATCH", "latency_ms": 300},
    {"kind": "latency", "service": "vault", "method": "POST", "latency_ms": 200},
    {"kind": "latency", "service": "vault", "method": "DELETE", "latency_ms": 300},
]


class CertificateView:
    """The registration's certificate as a consumer sees it: the latest version's PKCS#12, read through the
    versionless reference's backing secret, and whether a token request signed with it succeeds."""

    def __init__(self, api: Api, integration: str = "sentinel") -> None:
        self.api, self.name = api, certificate_name(api, integration)
        options: dict[str, Any] = {"verify_challenge_resource": False, "connection_verify": api.stand_in.ca_bundle}
        self.certificates = CertificateClient(api.stand_in.vault_url, ManagedIdentityCredential(), **options)

    def latest(self) -> tuple[str, str, dict[str, str], bytes]:
        """(version, key id on the app, tags, PKCS#12) of the latest version."""
        found = self.certificates.get_certificate(self.name)
        assert found.cer is not None and found.properties is not None
        version = str(found.properties.version)
        thumbprint = x509.load_der_x509_certificate(bytes(found.cer)).fingerprint(hashes.SHA256()).hex()
        return (
            version,
            Registry.key_credential_id(thumbprint),
            dict(found.properties.tags or {}),
            pkcs12(self.api, "sentinel", version),
        )

    def versions(self) -> int:
        return len(list(self.certificates.list_properties_of_certificate_versions(self.name)))

    def held(self) -> set[str]:
        """The key ids of every version Key Vault holds under the registration's name."""
        found = set()
        for properties in self.certificates.list_properties_of_certificate_versions(self.name):
            cer = self.certificates.get_certificate_version(self.name, str(properties.version)).cer
            assert cer is not None
            thumbprint = x509.load_der_x509_certificate(bytes(cer)).fingerprint(hashes.SHA256()).hex()
            found.add(Registry.key_credential_id(thumbprint))
        return found

    def staged(self) -> bool:
        try:
            self.certificates.get_certificate(f"{self.name}-staged")
        except ResourceNotFoundError:
            return False
        return True


async def watching(api: Api, client_id: str, race: Awaitable[Any]) -> tuple[Any, list[str], int]:
    """Runs the race while a consumer keeps reading the latest certificate and signing in with it:
    (the race's result, every moment the stored certificate did not work, how many moments were observed)."""
    view, gaps, seen = CertificateView(api), [], 0
    done = asyncio.Event()

    async def observe() -> None:
        nonlocal seen
        while not done.is_set():
            version, _, _, bundle = await asyncio.to_thread(view.latest)
            if not await asyncio.to_thread(signs_in, api, client_id, bundle):
                gaps.append(version)
            seen += 1

    observer = asyncio.create_task(observe())
    try:
        result = await race
    finally:
        done.set()
        await observer
    return result, gaps, seen


def assert_one_certificate(api: Api, grace: bool) -> tuple[dict[str, Any], str, dict[str, str]]:
    """One app whose current key is Key Vault's latest certificate, proven, signing in, with no staging certificate
    left; beside it, while `grace`, only superseded versions Key Vault still holds (waiting for the end of the
    grace period, which no sweep between rounds has retired), never a key nobody holds: (the app, the latest
    key id, its tags)."""
    [app] = api.apps()
    view = CertificateView(api)
    _, key_id, tags, bundle = view.latest()
    assert tags.get("verified") == "true", tags
    keys = set(app["keyCredentialIds"])
    assert key_id in keys and keys <= (view.held() if grace else {key_id}), (keys, tags)
    assert app["passwordKeyIds"] == []
    assert service_principals_of(api, app["appId"]) == 1
    assert not CertificateView(api).staged()
    assert signs_in(api, app["appId"], bundle)
    return app, key_id, tags


async def test_two_certificate_puts_at_once_make_one_certificate_and_one_key(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    api.stand_in.set_faults(SLOW_CERTIFICATE_WRITES)
    responses = await asyncio.gather(api.put(tenant, "sentinel", CERTIFICATE), api.put(tenant, "sentinel", CERTIFICATE))
    assert sorted(r.status_code for r in responses) == [200, 201], [body_of(r) for r in responses]
    app, key_id, _ = assert_one_certificate(api, grace=False)
    assert app["keyCredentialIds"] == [key_id] and CertificateView(api).versions() == 1
    assert {body_of(r)["credential"]["keyId"] for r in responses} == {key_id}
    # Again, on a registration that has its certificate: neither call makes another.
    again = await asyncio.gather(api.put(tenant, "sentinel", CERTIFICATE), api.put(tenant, "sentinel", CERTIFICATE))
    assert [r.status_code for r in again] == [200, 200], [body_of(r) for r in again]
    assert assert_one_certificate(api, grace=False)[1] == key_id and CertificateView(api).versions() == 1
    assert sum(rule["fired"] for rule in api.stand_in.admin("GET", "/faults")["rules"]) > 0


async def test_a_certificate_put_racing_an_on_demand_rotation_leaves_one_current_key_and_no_gap(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    params = {"tenantId": tenant, "integration": "sentinel"}
    created = await api.put(tenant, "sentinel", CERTIFICATE)
    assert created.status_code == 201, body_of(created)
    client_id = body_of(created)["application"]["clientId"]
    api.stand_in.set_faults(SLOW_CERTIFICATE_WRITES)
    for round_ in range(CERTIFICATE_ROUNDS):
        _, before, _, previous = CertificateView(api).latest()
        versions = CertificateView(api).versions()
        put = api.put(tenant, "sentinel", CERTIFICATE)
        rotate = api.call("rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", params)
        race = asyncio.gather(put, rotate) if round_ % 2 == 0 else asyncio.gather(rotate, put)
        results, gaps, seen = await watching(api, client_id, race)
        put_response, rotate_response = results if round_ % 2 == 0 else results[::-1]
        assert put_response.status_code == 200, body_of(put_response)
        assert rotate_response.status_code == 200, body_of(rotate_response)
        assert gaps == [], f"round {round_}: the stored certificate was refused at {len(gaps)} of {seen} moments"
        _, key_id, tags = assert_one_certificate(api, grace=True)
        # The rotation made exactly one new certificate, the PUT none; the previous one works through its grace.
        assert (
            key_id != before and tags["previous-key-id"] == before and CertificateView(api).versions() == versions + 1
        )
        assert signs_in(api, client_id, previous)
        print(f"round {round_}: {seen} moments observed, no gap")


async def test_a_sweep_racing_a_certificate_event_makes_exactly_one_rotation_with_no_gap(
    due_soon: tuple[Api, StandInClock, dict[str, list[str]]],
) -> None:
    api, clock, actions = due_soon
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "sentinel", CERTIFICATE))
    client_id = created["application"]["clientId"]
    api.stand_in.set_faults(SLOW_CERTIFICATE_WRITES)
    name = certificate_name(api, "sentinel")
    callers: dict[str, Callable[[], Awaitable[Any]]] = {
        "timer": sweep_and_work,  # the timer fans out; its worker rotates
        "event": lambda: FUNCTIONS["secret_near_expiry"](certificate_near_expiry(api, name)),
    }
    for round_ in range(CERTIFICATE_ROUNDS):
        clock.advance(35 * DAY)  # the certificate (two months) is inside the 30-day window
        _, before, _, previous = CertificateView(api).latest()
        versions = CertificateView(api).versions()
        actions.clear()
        order = list(callers)[round_ % 2 :] + list(callers)[: round_ % 2]
        race = asyncio.gather(*(as_caller(c, callers[c]) for c in order))  # type: ignore[arg-type]
        _, gaps, seen = await watching(api, client_id, race)
        assert sorted(actions) == sorted(callers) and all(len(a) == 1 for a in actions.values()), actions
        acted = {c: a[0] for c, a in actions.items()}
        assert sorted(acted.values()).count("rotated") == 1, (round_, acted)
        assert set(acted.values()) <= {"rotated", "busy", "nothing-due", "waiting"}, (round_, acted)
        assert gaps == [], f"round {round_}: the stored certificate was refused at {len(gaps)} of {seen} moments"
        _, key_id, tags = assert_one_certificate(api, grace=True)
        assert (
            key_id != before and tags["previous-key-id"] == before and CertificateView(api).versions() == versions + 1
        )
        assert signs_in(api, client_id, previous), "the previous certificate was cut off inside its grace period"
        print(f"round {round_}: {acted}, {seen} moments observed, no gap")


def certificate_near_expiry(api: Api, name: str) -> func.EventGridEvent:
    """Key Vault's CertificateNearExpiry event for one certificate, as Event Grid delivers it."""
    return func.EventGridEvent(
        id=str(uuid.uuid4()), topic="/subscriptions/x/resourceGroups/y/providers/Microsoft.KeyVault/vaults/z",
        subject=name, event_type="Microsoft.KeyVault.CertificateNearExpiry", event_time=None, data_version="1",
        data={"Id": f"{api.stand_in.vault_url}/certificates/{name}/abc", "VaultName": "127.0.0.1",
              "ObjectType": "Certificate", "ObjectName": name, "Version": "abc", "NBF": None, "EXP": 0},
    )  # fmt: skip


# --- certificates the vendor issued: the same one sent twice at once, and two of them racing ---

SLOW_VENDOR_WRITES = [  # the record's write and the PATCH of keyCredentials, each long enough to overlap
    {"kind": "latency", "service": "graph", "method": "PATCH", "latency_ms": 300},
    {"kind": "latency", "service": "vault", "method": "PUT", "latency_ms": 200},
]


def vendor_record(api: Api) -> list[dict[str, str]]:
    """The tags of every version of the registration's record of the vendor's certificate, oldest first."""
    name = secret_name(api, "sentinel").replace("-client-secret", "-vendor-certificate")
    return [dict(v["tags"]) for v in api.stand_in.state()["vault"]["secrets"][name]["versions"]]


def key_of(certificate: VendorCertificate) -> str:
    return Registry.key_credential_id(certificate.certificate.fingerprint(hashes.SHA256()).hex())


async def test_the_same_vendor_certificate_sent_twice_at_once_is_recorded_once_and_put_on_the_app_once(
    api: Api,
) -> None:
    tenant = api.stand_in.home_tenant_id
    vendor = VendorCertificate(datetime.now(UTC), days=365)
    api.stand_in.set_faults(SLOW_VENDOR_WRITES)
    body = vendor_body(vendor.pem)
    responses = await asyncio.gather(api.put(tenant, "sentinel", body), api.put(tenant, "sentinel", body))
    assert sorted(r.status_code for r in responses) == [200, 201], [body_of(r) for r in responses]
    [app] = api.apps()
    assert app["keyCredentialIds"] == [key_of(vendor)] and app["passwordKeyIds"] == []
    assert [tags["key-id"] for tags in vendor_record(api)] == [key_of(vendor)]
    assert service_principals_of(api, app["appId"]) == 1
    assert vendor.signs_in(api, app["appId"])
    assert sum(rule["fired"] for rule in api.stand_in.admin("GET", "/faults")["rules"]) > 0


async def test_two_vendor_certificates_racing_leave_one_current_the_other_in_grace_and_no_third_key(
    api: Api,
) -> None:
    """The vendor replaced its certificate while the PUT of the first was still in flight: the calls are taken
    one after the other, so whichever ran second is current and the first stays on the app for the grace
    period. Both keep signing in; nothing else is on the app or recorded."""
    tenant = api.stand_in.home_tenant_id
    first, second = (VendorCertificate(datetime.now(UTC), days=365) for _ in range(2))
    api.stand_in.set_faults(SLOW_VENDOR_WRITES)
    responses = await asyncio.gather(
        api.put(tenant, "sentinel", vendor_body(first.pem)), api.put(tenant, "sentinel", vendor_body(second.pem))
    )
    assert sorted(r.status_code for r in responses) == [200, 201], [body_of(r) for r in responses]
    [app] = api.apps()
    assert set(app["keyCredentialIds"]) == {key_of(first), key_of(second)}, app["keyCredentialIds"]
    versions = vendor_record(api)
    assert len(versions) == 2, versions
    current, replaced = versions[-1]["key-id"], versions[0]["key-id"]
    assert {current, replaced} == {key_of(first), key_of(second)}
    assert versions[-1]["previous-key-id"] == replaced and versions[-1].get("retire-after"), versions[-1]
    for certificate in (first, second):
        assert certificate.signs_in(api, app["appId"])
    read = body_of(await api.get(tenant, "sentinel"))
    assert read["credential"]["thumbprint"].lower() in {
        c.certificate.fingerprint(hashes.SHA256()).hex() for c in (first, second) if key_of(c) == current
    }, read["credential"]
