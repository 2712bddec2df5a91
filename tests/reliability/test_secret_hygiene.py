"""Secret hygiene: no client secret the product mints ever shows up anywhere but Key Vault.

Every secret minted in these runs is a canary: once the runs are over, each version Key Vault holds
is read back, and its text is searched for in everything the product let out while it worked,
with faults on so that retries, rollbacks and error paths run too:
- every log record at DEBUG, from every library, formatted with its traceback, plus its extra fields;
- every exception that escaped a function;
- every HTTP response (status, headers, body) and the Event Grid and timer handling;
- a real CLI process's stdout and stderr (with --verbose), every file it wrote under its home,
  temp and working folders, and every byte it sent to Application Insights.
A secret that was minted but never stored (a lost answer, a rollback) is not in Key Vault, so the
search also looks for the mark every Entra secret carries ("Q~" after a short prefix), which
nothing else the product handles contains (JWTs and PEM use no "~").

A client certificate's key is a canary too: the PKCS#12 of every certificate version Key Vault holds
(those offboarding deleted, and every staging certificate, recovered to be read) and its private key
in DER and PEM, in any of the encodings above, and the `PRIVATE KEY` armour of any PEM key.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.certificates import CertificateClient
from azure.keyvault.secrets import SecretClient
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from emulator.launcher import StandIn
from tests.appinsights import Ingestion, running_ingestion
from tests.azurite import Azurite
from tests.fakes.certificates import self_signed
from tests.functions.conftest import FUNCTIONS, NORTHWIND, Api, app_environment, serving
from tests.functions.queue_host import sweep_and_work
from tests.functions.test_certificates import VendorCertificate, vendor_body
from tests.functions.test_cli import ENTRA_SECRET_MARK, REPO
from tests.functions.test_rotation import DAY, StandInClock, near_expiry
from tests.reliability.test_races import certificate_near_expiry

# Every kind of fault, often enough that each path that handles one runs in a short run.
FAULTS = [
    {"kind": "status", "service": "graph", "status": 429, "retry_after": 1, "probability": 0.08},
    {"kind": "status", "service": "graph", "status": 503, "probability": 0.05},
    {"kind": "drop", "service": "graph", "drop": "after", "probability": 0.04},
    {"kind": "status", "service": "vault", "status": 429, "retry_after": 1, "probability": 0.06},
    {"kind": "status", "service": "vault", "status": 500, "probability": 0.05},
    {"kind": "drop", "service": "vault", "drop": "after", "probability": 0.05},
    {"kind": "status", "service": "entra", "path": "/oauth2/", "status": 503, "probability": 0.10},
]
ATTEMPTS = 25
EXIT_PENDING = 3
PRIVATE_KEY_ARMOUR = "PRIVATE KEY"  # "-----BEGIN (RSA |ENCRYPTED )PRIVATE KEY-----": no product output holds one
CERTIFICATE = b'{"credentialType": "certificate"}'


class Everything(logging.Handler):
    """Every record from every logger, as a handler that ships logs would see it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))  # the message, and the traceback when there is one
        self.texts.append(repr(record.__dict__))  # extra fields (audit events) and the raw args


@pytest.fixture
def everything_logged() -> Iterator[Everything]:
    root = logging.getLogger()
    handler, level = Everything(), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


@pytest.fixture
def ingestion() -> Iterator[Ingestion]:
    # Refusing the first batches, so the exporter writes them to its offline storage: files to search.
    yield from running_ingestion(refuse_first=2)


def stored_versions(stand_in: StandIn, name: str) -> list[str]:
    """The text of every version of a secret: each one was minted by the runs, so each is a canary."""
    client = SecretClient(
        stand_in.vault_url, ManagedIdentityCredential(), verify_challenge_resource=False,
        connection_verify=stand_in.ca_bundle,
    )  # fmt: skip
    with client:
        versions = [p.version for p in client.list_properties_of_secret_versions(name)]
        return [str(client.get_secret(name, version).value) for version in versions]


def stored_certificates(stand_in: StandIn, names: list[str]) -> list[bytes]:
    """The PKCS#12 of every version of these certificates, those deleted since (offboarding, a promoted or
    discarded staging certificate) recovered first: every certificate a run made is a version of one of them
    (a staging certificate's name is recovered, not reused, by the next rotation), so each is a canary."""
    options: dict[str, Any] = {"verify_challenge_resource": False, "connection_verify": stand_in.ca_bundle}
    certificates = CertificateClient(stand_in.vault_url, ManagedIdentityCredential(), **options)
    secrets = SecretClient(stand_in.vault_url, ManagedIdentityCredential(), **options)
    bundles = []
    with certificates, secrets:
        for name in names:
            try:
                certificates.get_deleted_certificate(name)
            except ResourceNotFoundError:
                pass
            else:
                certificates.begin_recover_deleted_certificate(name).result()
            try:
                versions = [str(v.version) for v in certificates.list_properties_of_certificate_versions(name)]
            except ResourceNotFoundError:
                continue
            for version in versions:
                value = secrets.get_secret(name, version).value
                assert value is not None
                bundles.append(base64.b64decode(value))
    return bundles


# A piece of a secret this long is a leak (about 70 bits of it): a log of `secret[6:]` or of any
# 12 characters of one, in the clear, URL-encoded or base64-encoded in either alphabet.
WINDOW = 12


def windows(text: str) -> set[str]:
    return {text[at : at + WINDOW] for at in range(len(text) - WINDOW + 1)}


def base64_forms(data: bytes) -> set[str]:
    """What data's base64 shows wherever data sits in what was encoded, in both alphabets.

    Base64 turns each 3 bytes into 4 characters, so the characters for data depend on where data
    starts within a group of 3. Encoding data from its 1st, 2nd and 3rd byte, cut to whole groups,
    gives the characters that every encoding of anything holding data (or a long enough piece of
    it) contains, for each of the three alignments.
    """
    forms = set()
    for shift in range(3):
        whole_groups = data[shift:][: (len(data) - shift) // 3 * 3]
        forms |= {base64.b64encode(whole_groups).decode(), base64.urlsafe_b64encode(whole_groups).decode()}
    return forms


def needles(canaries: list[str]) -> frozenset[str]:
    """Every WINDOW characters of each canary as it could be let out: found, they mean a leak."""
    found: set[str] = set()
    for canary in canaries:
        shown = {canary, quote(canary, safe=""), quote_plus(canary), quote(canary, safe="").replace("~", "%7E")}
        shown |= base64_forms(canary.encode())
        for form in shown:
            found |= windows(form)
    return frozenset(found)


def leaks(canaries: list[str], texts: list[str], key_material: frozenset[str] = frozenset()) -> list[str]:
    """Where a piece of a canary or of key material (`key_needles`), the mark of an Entra secret, or the armour
    of a PEM private key appears: the 120 characters around it, with every character of a found piece shown as
    `*` (a failing run must not print what leaked).

    All needles are WINDOW long, so one pass over each text looks each of its windows up in a set.
    """
    wanted = needles(canaries) | key_material
    found = []
    for text in texts:
        hits = [at for at in range(len(text) - WINDOW + 1) if text[at : at + WINDOW] in wanted]
        mark, armour = text.find(ENTRA_SECRET_MARK), text.find(PRIVATE_KEY_ARMOUR)
        if not hits and mark < 0 and armour < 0:
            continue
        at = hits[0] if hits else (mark if mark >= 0 else armour)
        start, end = max(0, at - 60), at + 60
        shown = list(text[start:end])
        for hit in hits:
            for i in range(max(hit, start), min(hit + WINDOW, end)):
                shown[i - start] = "*"
        if mark >= 0 and not hits:
            # A secret never stored: masked by its shape (a 4-character prefix, the mark, 34 more).
            secret_end = min(mark + len(ENTRA_SECRET_MARK) + 34, end)
            shown[max(mark - 4, start) - start : secret_end - start] = "<ENTRA SECRET>"
        elif armour >= 0 and not hits:
            # A private key in PEM that no certificate of the run holds: everything after the armour is masked.
            shown[armour - start :] = "<PRIVATE KEY>"
        found.append("".join(shown))
    return found


def key_needles(bundles: list[bytes]) -> frozenset[str]:
    """Every WINDOW characters of each certificate's key material as it could be let out: the PKCS#12 as Key
    Vault's backing secret holds it (base64, in the clear, URL-encoded or base64-encoded again) and as raw
    bytes in any base64, and its private key's DER (PKCS#8 and PKCS#1) in any base64, which covers the lines of
    its PEM forms. Pieces that the public certificate also holds (its DER, the public key and its modulus,
    which the private key repeats) are not secrets: they are left out, so sending the certificate to Graph,
    as onboarding must, is no leak."""
    secret: set[str] = set()
    public: set[str] = set()
    for bundle in bundles:
        private_key, certificate, _ = pkcs12.load_key_and_certificates(bundle, None)
        assert private_key is not None and certificate is not None, "a certificate Key Vault holds without its key"
        text = base64.b64encode(bundle).decode()
        forms = {text, quote(text, safe=""), quote_plus(text)} | base64_forms(text.encode()) | base64_forms(bundle)
        for private_format in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
            der = private_key.private_bytes(serialization.Encoding.DER, private_format, serialization.NoEncryption())
            forms |= base64_forms(der)
        for form in forms:
            secret |= windows(form)
        spki = certificate.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for data in (certificate.public_bytes(serialization.Encoding.DER), spki):
            # Every alignment, whole groups and the last partial one too (a window may end in it).
            for shift in range(3):
                full = data[shift:]
                for shown in (base64.b64encode(full).decode(), base64.urlsafe_b64encode(full).decode()):
                    public |= windows(shown) | windows(shown.rstrip("="))
    return frozenset(secret - public)


def test_the_leak_search_finds_pieces_and_encodings_of_a_secret() -> None:
    canary = "Ab38Q~xY.z_0-9kLmNoPqRsTuVwXyZ01234567~."  # the shape of an Entra secret
    tail = canary[6:]  # what a log of all but the first characters would show
    pieces = [tail, canary[20:32], quote(tail, safe="").replace("~", "%7E"), quote_plus(canary)]
    for padding in ("", "x", "xy"):  # every base64 alignment of the piece within what was encoded
        data = f"{padding}{tail}".encode()
        pieces += [base64.b64encode(data).decode(), base64.urlsafe_b64encode(data).decode()]
    for piece in pieces:
        [found] = leaks([canary], [f"record: {piece} end"])
        assert found.startswith("record: ") and found.endswith(" end"), piece
        assert not any(w in found for w in windows(piece)), "the report shows no piece of what leaked"
    [found] = leaks([], [f"a secret never stored: {canary} end"])  # found by the mark alone
    assert canary[:3] not in found and canary[6:] not in found and found.endswith(" end")
    # Shorter pieces are not leaks (the hint Graph shows is 3 characters), nor is unrelated base64.
    assert leaks([canary], [f"short: {canary[6:17]} {canary[-11:]} {base64.b64encode(b'unrelated text')!r}"]) == []


def test_a_cli_process_leaks_no_secret_to_output_files_or_telemetry(
    clock_stand_in: StandIn, azurite: Azurite, ingestion: Ingestion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stand_in = clock_stand_in
    for variable, value in stand_in.identity_env().items():
        monkeypatch.setenv(variable, value)  # this test reads the canaries back as the app's identity
    prefix = f"c{uuid.uuid4().hex[:10]}"
    # Home, temp and working folders of its own, so every file the process writes is found afterwards.
    home, temp, work = (tmp_path / "home", tmp_path / "tmp", tmp_path / "work")
    for folder in (home, temp, work):
        folder.mkdir()
    env = {
        **os.environ, **stand_in.app_settings(), "NAME_PREFIX": prefix, "PYTHONPATH": str(REPO),
        "AzureWebJobsStorage": azurite.connection_string, "HOME": str(home), "TMPDIR": str(temp),
        "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true", "PYTHONIOENCODING": "utf-8",
    }  # fmt: skip
    target = ["--tenant", stand_in.home_tenant_id, "--integration", "sentinel"]
    certificate_target = ["--tenant", stand_in.home_tenant_id, "--integration", "m365-defender"]
    outputs: list[str] = []

    def cli(*args: str) -> int:
        done = subprocess.run(
            [sys.executable, "-m", "shared.entrypoints.cli", "--verbose", *args], cwd=work, env=env,
            capture_output=True, text=True, encoding="utf-8", timeout=180, check=False,
        )  # fmt: skip
        outputs.extend([done.stdout, done.stderr])
        return done.returncode

    def until_done(*args: str) -> None:
        # As an operator would: rerun what faults stopped (the commands are idempotent).
        codes = [cli(*args)]
        while codes[-1] != 0 and len(codes) < ATTEMPTS:
            codes.append(cli(*args))
        assert codes[-1] == 0, f"{args}: exit codes {codes}"

    stand_in.set_faults(FAULTS, seed=6, application=200, servicePrincipal=200, password=300)
    try:
        until_done("onboard", *target)
        until_done("--json", "status", *target)
        until_done("rotate", *target, "--retire-immediately")
        # A certificate's key is made and read in a process too (its rotation and status run in process below).
        until_done("onboard", *certificate_target, "--credential-type", "certificate")
        until_done("--json", "rotate", "--all", "--dry-run")
    finally:
        injected = stand_in.admin("GET", "/faults")["injected"]
        stand_in.clear_faults()

    canaries = stored_versions(stand_in, f"{prefix}-{stand_in.home_tenant_id}-sentinel-client-secret")
    certificate = f"{prefix}-{stand_in.home_tenant_id}-m365-defender-client-certificate"
    bundles = stored_certificates(stand_in, [certificate, f"{certificate}-staged"])
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    written = [p.read_bytes().decode("utf-8", "replace") for p in files]
    sent = [body.decode("utf-8", "replace") for body in ingestion.raw]
    print(
        f"\nsecret hygiene (CLI): {len(canaries)} secrets and {len(bundles)} certificates minted and stored; "
        f"searched {len(outputs) // 2} runs' "
        f"output ({sum(map(len, outputs))} characters), {len(files)} files written, {len(sent)} telemetry batches "
        f"({len(ingestion.custom_events())} audit events); {injected} faults injected"
    )
    assert len(canaries) >= 2  # onboarding's and the rotation's
    assert ingestion.custom_events(), "the audit trail reached the ingestion endpoint"
    assert files, "the exporter kept the refused batches on disk, so the file search had something to read"
    assert bundles, "the certificate onboarding's certificate"
    assert leaks(canaries, outputs + written + sent, key_needles(bundles)) == []


async def test_onboarding_and_rotation_leak_no_secret_at_debug_with_faults(
    rotating: tuple[Api, StandInClock], everything_logged: Everything
) -> None:
    api, clock = rotating
    stand_in = api.stand_in
    tenant = stand_in.home_tenant_id
    route = {"tenantId": tenant, "integration": "sentinel"}
    seen: list[str] = []  # responses and escaped exceptions

    async def call(invoke: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await invoke()
        except Exception as error:  # noqa: BLE001 - what escapes is searched like everything else
            seen.append("".join(traceback.format_exception(error)))
            return None
        if isinstance(result, func.HttpResponse):
            seen.append(f"{result.status_code} {dict(result.headers)} {result.get_body().decode()}")
        return result

    async def until(invoke: Callable[[], Awaitable[Any]], done: Callable[[Any], bool]) -> None:
        for _ in range(ATTEMPTS):
            if done(await call(invoke)):
                return
        pytest.fail(f"not done after {ATTEMPTS} attempts: {seen[-1][-3000:]}")

    def status_is(*codes: int) -> Callable[[Any], bool]:
        return lambda response: isinstance(response, func.HttpResponse) and response.status_code in codes

    stand_in.set_faults(FAULTS, seed=9, application=200, servicePrincipal=200, password=300)
    try:
        await until(lambda: api.put(tenant, "sentinel"), status_is(200, 201))
        await until(lambda: api.get(tenant, "sentinel"), status_is(200))
        rotate = b'{"retirePrevious": "immediately"}'
        await until(
            lambda: api.call(
                "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", route, rotate,
                {"content-type": "application/json"},
            ),
            status_is(200),
        )  # fmt: skip
        clock.advance(40 * DAY)  # into the rotation window: the timer and the expiry event both act
        await call(sweep_and_work)
        name = f"{api.services.settings.name_prefix}-{tenant}-sentinel-client-secret"
        await call(lambda: FUNCTIONS["secret_near_expiry"](near_expiry(api, name)))
        clock.advance(3 * DAY)  # past the grace period: the superseded credential is retired
        await call(sweep_and_work)
        # Refused input takes the error paths too.
        await call(lambda: api.put(tenant, "sentinel", b'{"secretLifetimeDays": "x"}'))
        await call(lambda: api.put(tenant, "no-such-integration"))
    finally:
        injected = stand_in.admin("GET", "/faults")["injected"]
        stand_in.clear_faults()
    # What the faults interrupted finishes calmly, so the canaries include a rotation by the timer (a day on: past the
    # backoff of any rotation the faults failed).
    clock.advance(DAY)
    await call(sweep_and_work)

    canaries = stored_versions(stand_in, name)
    texts = everything_logged.texts + seen
    debug = sum(1 for text in everything_logged.texts if " DEBUG " in text)
    print(
        f"\nsecret hygiene (functions): {len(canaries)} secrets minted and stored; searched {len(texts) // 2} log "
        f"records ({debug} at DEBUG), {len(seen)} responses and exceptions; {injected} faults injected"
    )
    assert len(canaries) >= 3  # onboarding's, the on-demand rotation's and the timer's or the event's
    assert debug > 0, "DEBUG records were captured"
    assert leaks(canaries, texts) == []


def test_the_key_search_finds_key_material_but_not_the_public_certificate() -> None:
    now = datetime.now(UTC)
    issued = self_signed("CN=canary.example", now, now + timedelta(days=30))
    bundle = base64.b64decode(issued.pkcs12_base64)
    private_key, certificate, _ = pkcs12.load_key_and_certificates(bundle, None)
    assert private_key is not None and certificate is not None
    wanted = key_needles([bundle])
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pkcs1_der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    pieces = [
        # (The bundle's first ~1,100 characters are the certificate, then the private key's modulus: public.)
        issued.pkcs12_base64[1700:1800],  # a piece of the backing secret's value
        quote(issued.pkcs12_base64[-400:-200], safe=""),
        base64.urlsafe_b64encode(b"x" + bundle[1400:1600]).decode(),
        pem.splitlines()[10],  # one line of the private key's PEM (its private exponent), no armour
        base64.b64encode(pkcs1_der[-300:]).decode(),
    ]
    for piece in pieces:
        [found] = leaks([], [f"record: {piece} end"], wanted)
        assert found.startswith("record: ") and not any(w in found for w in windows(piece)), piece
    [armour] = leaks([], ["-----BEGIN RSA PRIVATE KEY----- and no more"], wanted)
    assert armour.startswith("-----BEGIN RSA <PRIVATE KEY>")
    # The public certificate goes to Graph (its DER in base64) and is no secret; nor is its public key.
    public = certificate.public_bytes(serialization.Encoding.DER)
    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    shown = [base64.b64encode(public).decode(), certificate.public_bytes(serialization.Encoding.PEM).decode()]
    assert leaks([], [*shown, base64.b64encode(spki).decode()], wanted) == []


@pytest.fixture
async def certificate_rotating(
    clock_stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Api, StandInClock]]:
    """The registered functions on a stand-in whose clock moves, issuing two-month certificates."""
    stand_in = clock_stand_in
    stand_in.clear_faults()
    app_environment(
        monkeypatch, stand_in, "h", azurite,
        CERTIFICATE_VALIDITY_MONTHS="2", ROTATION_WINDOW_DAYS="30", ROTATION_GRACE_HOURS="48",
    )  # fmt: skip
    clock = StandInClock(stand_in)
    try:
        async with serving(stand_in, now=clock.now) as served:
            yield served, clock
    finally:
        stand_in.clear_faults()


@pytest.mark.long  # 40 s; the suite CI runs searches a certificate onboarding's CLI process (above) for key material
async def test_certificate_flows_leak_no_key_material_at_debug_with_faults(
    certificate_rotating: tuple[Api, StandInClock], everything_logged: Everything
) -> None:
    """A certificate's onboarding, status, on-demand rotations (retiring the previous one after the grace period
    and at once), the timer's and Key Vault's event's rotation, and offboarding: the PKCS#12 of every
    certificate they made, and its private key in any form, appear in no log record, response or exception."""
    api, clock = certificate_rotating
    stand_in = api.stand_in
    tenant = stand_in.home_tenant_id
    route = {"tenantId": tenant, "integration": "sentinel"}
    name = f"{api.services.settings.name_prefix}-{tenant}-sentinel-client-certificate"
    seen: list[str] = []  # responses and escaped exceptions

    async def call(invoke: Callable[[], Awaitable[Any]]) -> Any:
        try:
            result = await invoke()
        except Exception as error:  # noqa: BLE001 - what escapes is searched like everything else
            seen.append("".join(traceback.format_exception(error)))
            return None
        if isinstance(result, func.HttpResponse):
            seen.append(f"{result.status_code} {dict(result.headers)} {result.get_body().decode()}")
        return result

    async def until(invoke: Callable[[], Awaitable[Any]], *codes: int) -> None:
        for _ in range(ATTEMPTS):
            response = await call(invoke)
            if isinstance(response, func.HttpResponse) and response.status_code in codes:
                return
        pytest.fail(f"not done after {ATTEMPTS} attempts: {seen[-1][-3000:]}")

    def rotate(body: bytes) -> Callable[[], Awaitable[Any]]:
        return lambda: api.call(
            "rotate_now", "POST", f"tenants/{tenant}/integrations/sentinel/rotate", route, body,
            {"content-type": "application/json"},
        )  # fmt: skip

    stand_in.set_faults(FAULTS, seed=13, application=200, servicePrincipal=200)
    try:
        await until(lambda: api.put(tenant, "sentinel", CERTIFICATE), 200, 201)
        await until(lambda: api.get(tenant, "sentinel"), 200)
        await until(rotate(b'{"retirePrevious": "afterGracePeriod"}'), 200)
        await until(rotate(b'{"retirePrevious": "immediately"}'), 200)
        clock.advance(35 * DAY)  # into the rotation window: the timer and the expiry event both act
        await call(sweep_and_work)
        await call(lambda: FUNCTIONS["secret_near_expiry"](certificate_near_expiry(api, name)))
        clock.advance(3 * DAY)  # past the grace period: the superseded certificate is retired
        await call(sweep_and_work)
        await call(lambda: api.put(tenant, "sentinel", b'{"credentialType": "pfx"}'))  # refused input
    finally:
        injected = stand_in.admin("GET", "/faults")["injected"]
        stand_in.clear_faults()
    clock.advance(DAY)  # past the backoff of any rotation the faults failed
    await call(sweep_and_work)  # finishes calmly what the faults interrupted
    offboard = ("offboard_integration", "DELETE", f"tenants/{tenant}/integrations/sentinel", route)
    await until(lambda: api.call(*offboard), 200)

    bundles = stored_certificates(stand_in, [name, f"{name}-staged"])
    texts = everything_logged.texts + seen
    debug = sum(1 for text in everything_logged.texts if " DEBUG " in text)
    print(
        f"\ncertificate hygiene (functions): {len(bundles)} certificates made and stored; searched {len(texts) // 2} "
        f"log records ({debug} at DEBUG), {len(seen)} responses and exceptions; {injected} faults injected"
    )
    # Onboarding's; each of the 3 rotations' staging certificate and its promoted copy.
    assert len(bundles) >= 7, len(bundles)
    assert debug > 0, "DEBUG records were captured"
    assert leaks([], texts, key_needles(bundles)) == []


@pytest.fixture
async def trusting(stand_in: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Api]:
    """The registered functions, their connectors trusting this service's identity (the federated type)."""
    stand_in.clear_faults()
    identity = str(stand_in.info["managed_identity_object_id"])
    app_environment(monkeypatch, stand_in, "v", azurite, CONNECTOR_TRUST_SUBJECT=identity)
    async with serving(stand_in) as served:
        yield served


async def test_vendor_certificate_and_federated_flows_leak_no_key_or_proof_at_debug(
    trusting: Api, everything_logged: Everything
) -> None:
    """A vendor's certificate installed, proven by its signed assertion (a credential for ten minutes: a token
    can be got with it), and once sent with its private key (refused); a federated onboarding, consented, read
    and offboarded: neither the vendor's key in any form nor any piece of its assertion's signature appears in
    a log record, a response or an exception."""
    api = trusting
    stand_in, tenant = api.stand_in, api.stand_in.home_tenant_id
    seen: list[str] = []

    async def call(invoke: Awaitable[func.HttpResponse]) -> dict[str, Any]:
        try:
            response = await invoke
        except Exception as error:  # what escapes is searched like everything else, then fails the test
            seen.append("".join(traceback.format_exception(error)))
            raise
        seen.append(f"{response.status_code} {dict(response.headers)} {response.get_body().decode()}")
        return {"status": response.status_code, **json.loads(response.get_body() or b"{}")}

    vendor = VendorCertificate(datetime.now(UTC), days=365)
    installed = await call(api.put(tenant, "sentinel", vendor_body(vendor.pem)))
    assert installed["status"] == 201, installed
    proof = vendor.assertion(api, installed["application"]["clientId"])
    proven = await call(api.put(tenant, "sentinel", vendor_body(vendor.pem, proof)))
    assert proven["status"] == 200 and proven["credential"]["verified"] is True, proven
    refused = await call(api.put(tenant, "sentinel", vendor_body(vendor.key_pem + vendor.pem)))
    assert refused["status"] == 400, refused
    assert (await call(api.get(tenant, "sentinel")))["status"] == 200

    # The federated type: the assertions it sends are the managed identity's tokens, for Entra's token endpoint only.
    federated = b'{"credentialType": "federated"}'
    pending = await call(api.put(NORTHWIND, "m365-defender", federated))
    assert pending["status"] == 202, pending
    profile = api.services.catalog.require("m365-defender")
    roles = {p.resource_app_id: list(p.roles) for p in profile.permissions}
    stand_in.admin(
        "POST", f"/tenants/{NORTHWIND}/consent", {"appId": pending["application"]["clientId"], "roles": roles}
    )
    assert (await call(api.put(NORTHWIND, "m365-defender", federated)))["status"] == 201
    assert (await call(api.get(NORTHWIND, "m365-defender")))["status"] == 200
    route = {"tenantId": NORTHWIND, "integration": "m365-defender"}
    offboarded = await call(
        api.call("offboard_integration", "DELETE", f"tenants/{NORTHWIND}/integrations/m365-defender", route)
    )
    assert offboarded["status"] == 200, offboarded

    bundle = pkcs12.serialize_key_and_certificates(
        None, vendor.key, vendor.certificate, None, serialization.NoEncryption()
    )
    signature = proof.rsplit(".", 1)[1]
    texts = everything_logged.texts + seen
    debug = sum(1 for text in everything_logged.texts if " DEBUG " in text)
    print(
        f"\nvendor and federated hygiene: searched {len(texts) // 2} log records ({debug} at DEBUG), {len(seen)} responses"
    )
    assert debug > 0, "DEBUG records were captured"
    assert leaks([signature], texts, key_needles([bundle])) == []
