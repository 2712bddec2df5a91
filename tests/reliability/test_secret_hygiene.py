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
"""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import traceback
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from tests.appinsights import Ingestion, running_ingestion
from tests.azurite import Azurite
from tests.functions.conftest import FUNCTIONS, Api
from tests.functions.test_cli import ENTRA_SECRET_MARK, REPO
from tests.functions.test_rotation import DAY, StandInClock, near_expiry

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


def leaks(canaries: list[str], texts: list[str]) -> list[str]:
    """Where a piece of a canary or the mark of an Entra secret appears: the 120 characters around it,
    with every character of a found piece shown as `*` (a failing run must not print what leaked).

    All needles are WINDOW long, so one pass over each text looks each of its windows up in a set.
    """
    wanted = needles(canaries)
    found = []
    for text in texts:
        hits = [at for at in range(len(text) - WINDOW + 1) if text[at : at + WINDOW] in wanted]
        mark = text.find(ENTRA_SECRET_MARK)
        if not hits and mark < 0:
            continue
        at = hits[0] if hits else mark
        start, end = max(0, at - 60), at + 60
        shown = list(text[start:end])
        for hit in hits:
            for i in range(max(hit, start), min(hit + WINDOW, end)):
                shown[i - start] = "*"
        if mark >= 0 and not hits:
            # A secret never stored: masked by its shape (a 4-character prefix, the mark, 34 more).
            secret_end = min(mark + len(ENTRA_SECRET_MARK) + 34, end)
            shown[max(mark - 4, start) - start : secret_end - start] = "<ENTRA SECRET>"
        found.append("".join(shown))
    return found


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

    stand_in.set_faults(FAULTS, seed=5, application=200, servicePrincipal=200, password=300)
    try:
        until_done("onboard", *target)
        until_done("--json", "status", *target)
        until_done("rotate", *target, "--retire-immediately")
        until_done("--json", "rotate", "--all", "--dry-run")
    finally:
        injected = stand_in.admin("GET", "/faults")["injected"]
        stand_in.clear_faults()

    canaries = stored_versions(stand_in, f"{prefix}-{stand_in.home_tenant_id}-sentinel-client-secret")
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    written = [p.read_bytes().decode("utf-8", "replace") for p in files]
    sent = [body.decode("utf-8", "replace") for body in ingestion.raw]
    print(
        f"\nsecret hygiene (CLI): {len(canaries)} secrets minted and stored; searched {len(outputs) // 2} runs' "
        f"output ({sum(map(len, outputs))} characters), {len(files)} files written, {len(sent)} telemetry batches "
        f"({len(ingestion.custom_events())} audit events); {injected} faults injected"
    )
    assert len(canaries) >= 2  # onboarding's and the rotation's
    assert ingestion.custom_events(), "the audit trail reached the ingestion endpoint"
    assert files, "the exporter kept the refused batches on disk, so the file search had something to read"
    assert leaks(canaries, outputs + written + sent) == []


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
        await call(lambda: FUNCTIONS["rotation_sweep"](TimerRequest()))
        name = f"{api.services.settings.name_prefix}-{tenant}-sentinel-client-secret"
        await call(lambda: FUNCTIONS["secret_near_expiry"](near_expiry(api, name)))
        clock.advance(3 * DAY)  # past the grace period: the superseded credential is retired
        await call(lambda: FUNCTIONS["rotation_sweep"](TimerRequest()))
        # Refused input takes the error paths too.
        await call(lambda: api.put(tenant, "sentinel", b'{"secretLifetimeDays": "x"}'))
        await call(lambda: api.put(tenant, "no-such-integration"))
    finally:
        injected = stand_in.admin("GET", "/faults")["injected"]
        stand_in.clear_faults()
    # What the faults interrupted finishes calmly, so the canaries include a rotation by the timer.
    await call(lambda: FUNCTIONS["rotation_sweep"](TimerRequest()))

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
