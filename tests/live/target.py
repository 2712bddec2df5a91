"""Where the live suite sends its requests: one interface, two ways in, the same flows for both.

`InProcessTarget` calls the functions registered in function_app.py with real `azure.functions`
request objects and the function app's settings from the environment (the stand-in's in CI, a real
deployment's when a maintainer exports them). `HttpTarget` calls a running function app over HTTPS
with its function key. Every test speaks to `Target`, never to one of them.

Everything a run creates carries its run id, `live-YYMMDDHHMM-xxxxxx` (UTC start, minute, and six
random hex digits): in the app registration's display name (which Graph can filter on with
`startsWith`, https://learn.microsoft.com/graph/api/resources/application), and in process also in
NAME_PREFIX, so the unique name and the Key Vault secret names carry it too. The start time in the id
is what the sweep reads to tell an interrupted earlier run (old) from a concurrent one (young).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import secrets
import ssl
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

import azure.functions as func
import httpx
import jwt
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.functions.decorators.http import HttpTrigger
from azure.identity import AzureCliCredential, CertificateCredential, ClientSecretCredential, ManagedIdentityCredential
from azure.identity.aio import AzureCliCredential as AsyncAzureCliCredential
from azure.keyvault.secrets import SecretClient

from emulator.launcher import StandIn
from shared import bootstrap
from shared.domain.catalog import Catalog, load_catalog
from shared.domain.clouds import PUBLIC
from shared.settings import load_settings
from tests.functions.conftest import FUNCTIONS, REGISTERED

RUN_ID = re.compile(r"live-(?P<started>\d{10})-(?P<suffix>[0-9a-f]{6})")
GUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
SECRET_NAME = re.compile(
    rf"(?P<prefix>{RUN_ID.pattern})-(?P<tenant>{GUID})-(?P<integration>[a-z][a-z0-9-]*[a-z0-9])"
    r"-(?:client-id|tenant-id|client-secret)"
)
REFERENCE = re.compile(r"@Microsoft\.KeyVault\(SecretUri=(?P<vault>https://[^/]+)/secrets/(?P<name>[A-Za-z0-9-]+)/\)")
ENTRA_SECRET_MARK = "Q~"  # every Entra client secret (and the stand-in's) carries it after a short prefix
SHORTEST_LIFETIME_DAYS = 1  # the least secretLifetimeDays the API accepts (shared/domain/validation.py)


# --- run ids ---


@dataclass(frozen=True, order=True)
class RunId:
    started: datetime  # UTC, to the minute
    suffix: str

    @classmethod
    def new(cls, started: datetime | None = None) -> RunId:
        when = (started or datetime.now(UTC)).astimezone(UTC).replace(second=0, microsecond=0)
        return cls(when, secrets.token_hex(3))

    @classmethod
    def find(cls, text: str | None) -> RunId | None:
        """The run id at the start of a display name, unique name or secret name, if there is one."""
        match = RUN_ID.match(text or "")
        if match is None:
            return None
        started = datetime.strptime(match["started"], "%y%m%d%H%M").replace(tzinfo=UTC)
        return cls(started, match["suffix"])

    def __str__(self) -> str:
        return f"live-{self.started:%y%m%d%H%M}-{self.suffix}"

    def age(self, now: datetime) -> timedelta:
        return now - self.started

    def display_name(self, integration: str) -> str:
        return f"{self} {integration}"


# --- answers ---


@dataclass
class Answer:
    method: str
    path: str
    status: int
    headers: dict[str, str]  # lower-case names
    text: str

    @property
    def body(self) -> Any:
        return json.loads(self.text) if self.text else None

    @property
    def problem(self) -> str:
        """The problem type's last segment (`registration-not-found`), or '' for a success."""
        body = self.body if self.headers.get("content-type", "").startswith("application/problem+json") else None
        return str(body.get("type", "")).rsplit("/", 1)[-1] if isinstance(body, dict) else ""

    @property
    def later(self) -> bool:
        """Whether the answer says "the same request again, later": 202 while Entra replicates, another
        operation holding the registration, or throttling and unavailability upstream."""
        return self.status in (202, 429, 503) or (self.status == 409 and self.problem == "registration-busy")

    def retry_after(self, default: float = 5) -> float:
        try:
            return max(0.0, float(self.headers.get("retry-after", default)))
        except ValueError:
            return default

    def __str__(self) -> str:  # what an assertion message shows
        return f"{self.method} {self.path} -> {self.status} {self.text[:800]}"


# --- the downstream consumer: reads a Key Vault reference, then asks Entra for a token ---


@contextlib.contextmanager
def environ(values: Mapping[str, str]) -> Iterator[None]:
    """os.environ with `values` set, restored afterwards: azure-identity reads the managed identity's
    endpoint from the environment when a credential is built, and the rest of the session must not see it."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@dataclass
class Consumer:
    """What a downstream service does with the answer: resolve the Key Vault reference, use the secret.

    Needs read access to the vault, so it exists in process (the service's own identity) and against the
    stand-in; against a deployed app over HTTP the runner usually has none, and the checks that need it skip.
    """

    make_credential: Callable[[], TokenCredential]
    authority: str
    ca_bundle: str | None
    verify_challenge_resource: bool
    environment: dict[str, str] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)  # every client secret read, for the no-leak check
    operations: int = 0  # Key Vault operations this consumer made (the README's cost figures)
    _credential: TokenCredential | None = None

    @property
    def local(self) -> bool:
        return urlsplit(self.authority).hostname in ("127.0.0.1", "localhost", "::1")

    def _vault(self, reference: str) -> tuple[SecretClient, str]:
        match = REFERENCE.fullmatch(reference)
        assert match, f"not a versionless Key Vault reference: {reference!r}"
        if self._credential is None:
            self._credential = self.make_credential()
        client = SecretClient(
            match["vault"], self._credential, verify_challenge_resource=self.verify_challenge_resource,
            connection_verify=self.ca_bundle or True,
        )  # fmt: skip
        return client, match["name"]

    def read(self, reference: str) -> tuple[str, dict[str, str]]:
        """The secret's current value and tags, through the versionless reference, as App Service reads it."""
        with environ(self.environment):
            client, name = self._vault(reference)
            with client:
                secret = client.get_secret(name)
                self.operations += 1
        assert secret.value
        if secret.properties.content_type in ("application/vnd.entra.client-secret", "application/x-pkcs12"):
            self.seen.add(secret.value)  # client and tenant ids are no secret: answers rightly hold them
        return secret.value, dict(secret.properties.tags or {})

    def versions(self, reference: str) -> int:
        with environ(self.environment):
            client, name = self._vault(reference)
            with client:
                self.operations += 1  # one page: a secret here has a handful of versions
                return sum(1 for _ in client.list_properties_of_secret_versions(name))

    def claims(self, tenant: str, client_id: str, secret: str, scope: str) -> dict[str, Any] | None:
        """The claims of a client-credentials token got with this secret; None when Entra refuses it."""
        credential = ClientSecretCredential(
            tenant, client_id, secret, authority=self.authority, disable_instance_discovery=self.local,
            connection_verify=self.ca_bundle or True,
        )  # fmt: skip
        try:
            with credential:
                token = credential.get_token(scope)
        except ClientAuthenticationError:
            return None
        return dict(jwt.decode(token.token, options={"verify_signature": False}))

    def certificate_claims(self, tenant: str, client_id: str, pkcs12: str, scope: str) -> dict[str, Any] | None:
        """The claims of a token got with a certificate read through its reference (base64 PKCS#12), as a
        consumer's azure-identity CertificateCredential sends it; None when Entra refuses it."""
        credential = CertificateCredential(
            tenant, client_id, certificate_data=base64.b64decode(pkcs12), authority=self.authority,
            disable_instance_discovery=self.local, connection_verify=self.ca_bundle or True,
        )  # fmt: skip
        try:
            with credential:
                token = credential.get_token(scope)
        except ClientAuthenticationError:
            return None
        return dict(jwt.decode(token.token, options={"verify_signature": False}))

    def refused(self, tenant: str, client_id: str, secret: str, scope: str, within: float) -> bool:
        """Whether Entra refuses this secret, waiting up to `within` seconds: a removed credential stops
        working only once the removal has replicated."""
        deadline = time.monotonic() + within
        while self.claims(tenant, client_id, secret, scope) is not None:
            if time.monotonic() > deadline:
                return False
            time.sleep(5)
        return True


def live_catalog() -> Catalog:
    """The catalog this checkout ships, as the cloud the run targets (AZURE_CLOUD, as the app reads it) sees it."""
    cloud = os.environ.get("AZURE_CLOUD", "").strip() or PUBLIC.name
    return load_catalog(cloud=cloud)


def token_scopes() -> dict[str, str]:
    """Resource app id -> the scope that proves its roles in the targeted cloud."""
    return {p.resource_app_id: p.token_scope for profile in live_catalog() for p in profile.permissions}


# --- what a run is pointed at ---


@dataclass
class World:
    """Everything the flows need to know about where they run; built from the environment (or the stand-in)."""

    description: str
    tenant: str  # the one-tenant flows onboard here
    customers: list[str]  # the cross-tenant flows onboard here (vendor-hosted mode); may be empty
    integration: str
    app_settings: dict[str, str]  # in process: the function app's settings
    function_url: str | None = None  # over HTTP: the deployed app's base URL and a function key
    function_key: str | None = None
    consumer: Consumer | None = None
    credential: str = "managed-identity"  # in process, the identity the service runs as
    purge_secrets: bool = False  # vaults with purge protection (the template's) refuse to purge
    converge_seconds: float = 300  # how long a PUT answering 202 is repeated
    settle_seconds: float = 120  # how long Entra may take to stop honouring a removed credential
    stand_in: StandIn | None = None  # in CI: the stand-in, whose admin API counts requests and injects faults
    # A Log Analytics workspace in LIVE_TENANT_ID's subscription whose admin granted what docs/sentinel.md asks
    # (LIVE_SENTINEL_WORKSPACE, its resource id); None: the Sentinel workspace flow skips.
    sentinel_workspace: str | None = None

    def tenants(self) -> list[str]:
        return [self.tenant, *[t for t in self.customers if t != self.tenant]]


class LiveSetupError(Exception):
    """The environment does not say where to run; the message says what to set."""


def world_from_environment(env: Mapping[str, str]) -> World:
    """LIVE_TARGET=in-process or http, from the variables the README lists."""
    target = env.get("LIVE_TARGET", "stand-in").strip()
    tenant = env.get("LIVE_TENANT_ID", "").strip().lower()
    if not re.fullmatch(GUID, tenant):
        raise LiveSetupError(f"LIVE_TARGET={target} needs LIVE_TENANT_ID, the directory id of a test tenant")
    customers = [t.lower() for t in re.split(r"[\s,]+", env.get("LIVE_CUSTOMER_TENANT_IDS", "").strip()) if t]
    if bad := [t for t in customers if not re.fullmatch(GUID, t)]:
        raise LiveSetupError(f"LIVE_CUSTOMER_TENANT_IDS holds something that is not a tenant id: {bad[0]!r}")
    common: dict[str, Any] = {
        "tenant": tenant,
        "customers": customers,
        "integration": env.get("LIVE_INTEGRATION", "").strip() or "m365-defender",
        "purge_secrets": env.get("LIVE_PURGE_SECRETS", "").strip().lower() == "true",
        "sentinel_workspace": env.get("LIVE_SENTINEL_WORKSPACE", "").strip() or None,
    }
    if target == "http":
        url, key = env.get("LIVE_FUNCTION_URL", "").strip(), env.get("LIVE_FUNCTION_KEY", "").strip()
        if not url.startswith(("https://", "http://")) or not key:
            raise LiveSetupError(
                "LIVE_TARGET=http needs LIVE_FUNCTION_URL (https://<app>.azurewebsites.net) and LIVE_FUNCTION_KEY"
            )
        return World(f"the function app at {url}", app_settings={}, function_url=url, function_key=key, **common)
    if target == "in-process":
        settings = load_settings(env)  # the app's own validation: a missing or bad setting is named
        credential = env.get("LIVE_CREDENTIAL", "").strip() or "managed-identity"
        if credential not in ("managed-identity", "azure-cli"):
            raise LiveSetupError("LIVE_CREDENTIAL is managed-identity (the default) or azure-cli")
        client_id = settings.managed_identity_client_id

        def make_credential() -> TokenCredential:
            if credential == "azure-cli":
                return AzureCliCredential(tenant_id=settings.home_tenant_id)
            return ManagedIdentityCredential(client_id=client_id) if client_id else ManagedIdentityCredential()

        consumer = Consumer(
            make_credential, settings.authority_host, settings.tls_ca_bundle,
            settings.key_vault_verify_challenge_resource,
        )  # fmt: skip
        return World(
            f"tenant {tenant}, in process", app_settings=dict(env), consumer=consumer, credential=credential, **common
        )
    raise LiveSetupError(f"LIVE_TARGET is stand-in (the default), in-process or http; not {target!r}")


# --- routes, as the Functions host matches them ---


def _routes() -> list[tuple[set[str], re.Pattern[str], str]]:
    routes = []
    for function in REGISTERED:
        trigger = function.get_trigger()
        if isinstance(trigger, HttpTrigger):
            pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(str(trigger.route)))
            methods = {str(m).split(".")[-1].upper() for m in trigger.methods or []}
            routes.append((methods, re.compile(pattern, re.IGNORECASE), str(function.get_function_name())))
    return routes


ROUTES = _routes()


def route(method: str, path: str) -> tuple[str, dict[str, str]] | None:
    """(function name, route parameters) for a request to /api/{path}, or None (the host's 404)."""
    for methods, pattern, name in ROUTES:
        match = pattern.fullmatch(path)
        if match and method.upper() in methods:
            return name, {k: unquote(v) for k, v in match.groupdict().items()}
    return None


# --- the targets ---


@dataclass(frozen=True, order=True)
class Leftover:
    """A registration some live run made and did not remove: its run, where it is, what found it."""

    run: RunId
    tenant: str
    integration: str
    found_in: str  # "Entra", "Entra deleted items", "Key Vault", "the API"


@dataclass
class SweepReport:
    offboarded: list[Leftover] = field(default_factory=list)
    too_young: list[Leftover] = field(default_factory=list)  # a concurrent run's, perhaps: left alone
    failed: list[tuple[Leftover, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # where the sweep could not look

    def __str__(self) -> str:
        lines = [f"offboarded {len(self.offboarded)}, left {len(self.too_young)} younger than the minimum age"]
        lines += [f"  offboarded {x.run} {x.tenant}/{x.integration} (found in {x.found_in})" for x in self.offboarded]
        lines += [f"  FAILED {x.run} {x.tenant}/{x.integration}: {why}" for x, why in self.failed]
        lines += [f"  could not look: {p}" for p in self.problems]
        return "\n".join(lines)


class Target(ABC):
    """The product as the live suite sees it: the HTTP API, and what it must clean up."""

    kind: str

    def __init__(self, world: World, run: RunId) -> None:
        self.world = world
        self.run = run
        self.answers: list[Answer] = []  # every answer, searched for secrets
        self.onboarded: dict[tuple[str, str], None] = {}  # what the finalizer must offboard, in order
        self.extra: dict[tuple[str, str], dict[str, Any]] = {}  # body fields a registration's PUTs carry

    @abstractmethod
    async def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer: ...

    @abstractmethod
    async def leftovers(self) -> tuple[list[Leftover], list[str]]:
        """Registrations of live runs in the world's tenants, and where it could not look."""

    @abstractmethod
    async def offboard_leftover(self, leftover: Leftover) -> Answer: ...

    async def close(self) -> None:
        return None

    # --- the API ---

    async def request(self, method: str, path: str, body: Any = None) -> Answer:
        raw = json.dumps(body).encode() if body is not None else b""
        headers = {"content-type": "application/json"} if raw else {}
        answer = await self._send(method, path, raw, headers)
        self.answers.append(answer)
        return answer

    @staticmethod
    def path(tenant: str, integration: str) -> str:
        return f"tenants/{tenant}/integrations/{integration}"

    def put_body(self, integration: str, lifetime_days: int = SHORTEST_LIFETIME_DAYS) -> dict[str, Any]:
        """The one body every PUT of this run sends: its run id in the display name, the shortest lifetime."""
        return {
            "displayName": self.run.display_name(integration),
            "secretLifetimeDays": lifetime_days,
            "notes": f"Made by the live suite (tests/live), run {self.run}; its cleanup or a later run removes it.",
        }

    async def put(self, tenant: str, integration: str, extra: dict[str, Any] | None = None) -> Answer:
        """`extra`: more body fields (a credential type); remembered, so the PUTs after it send them too."""
        self.onboarded[tenant, integration] = None  # before sending: an interrupted PUT is cleaned up too
        if extra is not None:
            self.extra[tenant, integration] = extra
        body = self.put_body(integration) | self.extra.get((tenant, integration), {})
        return await self.request("PUT", self.path(tenant, integration), body)

    async def get(self, tenant: str, integration: str) -> Answer:
        return await self.request("GET", self.path(tenant, integration))

    async def rotate(self, tenant: str, integration: str, retire_previous: str | None = None) -> Answer:
        body = {"retirePrevious": retire_previous} if retire_previous else None
        return await self._patiently(lambda: self.request("POST", self.path(tenant, integration) + "/rotate", body))

    async def delete(self, tenant: str, integration: str, purge: bool = True) -> Answer:
        flags = {"purgeApplication": "true"} if purge else {}
        if purge and self.world.purge_secrets:
            flags["purgeSecrets"] = "true"
        query = f"?{urlencode(flags)}" if flags else ""
        answer = await self._patiently(lambda: self.request("DELETE", self.path(tenant, integration) + query))
        if answer.status == 200:
            self.onboarded.pop((tenant, integration), None)
            self.extra.pop((tenant, integration), None)
        return answer

    async def catalog_roles(self, integration: str) -> dict[str, set[str]]:
        """Resource app id -> the roles the catalog gives this integration, as the API lists them."""
        answer = await self.request("GET", "integrations")
        assert answer.status == 200, str(answer)
        [profile] = [p for p in answer.body["integrations"] if p["id"] == integration]
        return {p["resourceAppId"]: set(p["roles"]) for p in profile["permissions"]}

    async def _patiently(self, send: Callable[[], Any], bound: float | None = None) -> Answer:
        """Send, and again after Retry-After while the answer says later (202 or busy), up to a bound."""
        deadline = time.monotonic() + (self.world.converge_seconds if bound is None else bound)
        while True:
            answer: Answer = await send()
            if not answer.later:
                return answer
            wait = answer.retry_after()
            if time.monotonic() + wait > deadline:
                return answer
            await asyncio.sleep(wait)

    async def onboard(self, tenant: str, integration: str, extra: dict[str, Any] | None = None) -> list[Answer]:
        """PUT until converged, honouring Retry-After; every answer, first to last.

        First makes sure the registration is not someone else's: the suite touches only what its own
        run made (a deployed app's NAME_PREFIX is fixed, so its unique names are shared by every caller)."""
        existing = await self.get(tenant, integration)
        if existing.status == 200:
            owner = RunId.find(((existing.body or {}).get("application") or {}).get("displayName"))
            if owner is None:
                raise AssertionError(
                    f"{tenant}/{integration} is already registered and not by the live suite ({existing}); "
                    "point the suite at a test tenant or a deployment of its own"
                )
            if owner != self.run:
                raise AssertionError(
                    f"{tenant}/{integration} belongs to live run {owner}, still running or interrupted less than "
                    "LIVE_SWEEP_MIN_AGE_MINUTES ago; the next run's sweep removes it"
                )
        answers = [await self.put(tenant, integration, extra)]
        deadline = time.monotonic() + self.world.converge_seconds
        while answers[-1].later:
            wait = answers[-1].retry_after()
            assert time.monotonic() + wait <= deadline, (
                f"not converged in {self.world.converge_seconds:g} s: {answers[-1]}"
            )
            await asyncio.sleep(wait)
            answers.append(await self.put(tenant, integration))
        return answers

    async def cleanup(self, only: list[tuple[str, str]] | None = None) -> list[str]:
        """Offboard what this run onboarded and has not offboarded (all of it, or `only` these); what could
        not be, with why."""
        failures = []
        for tenant, integration in [key for key in self.onboarded if only is None or key in only]:
            answer = await self.delete(tenant, integration)
            if answer.status != 200:  # e.g. no right to purge deleted items: deleting is what matters
                answer = await self.delete(tenant, integration, purge=False)
            if answer.status != 200:
                failures.append(str(answer))
        return failures

    async def sweep(self, min_age: timedelta, now: datetime | None = None) -> SweepReport:
        """Offboard what earlier live runs left behind (interrupted before their cleanup), never this run's,
        nor a run younger than `min_age` (it may still be running)."""
        now = now or datetime.now(UTC)
        report = SweepReport()
        found, report.problems = await self.leftovers()
        done: set[tuple[RunId, str, str]] = set()
        for leftover in sorted(found):
            key = (leftover.run, leftover.tenant, leftover.integration)
            if leftover.run == self.run or key in done:
                continue
            done.add(key)
            if leftover.run.age(now) < min_age:
                report.too_young.append(leftover)
                continue
            answer = await self.offboard_leftover(leftover)
            if answer.status == 200:
                report.offboarded.append(leftover)
            else:
                report.failed.append((leftover, str(answer)))
        return report


class InProcessTarget(Target):
    """The registered functions, called as the Functions host calls them, with the app's settings."""

    kind = "in-process"

    def __init__(self, world: World, run: RunId) -> None:
        super().__init__(world, run)
        # Each run its own NAME_PREFIX: unique names and secret names carry the run id.
        self.environment = dict(world.app_settings, NAME_PREFIX=str(run))
        self._services: bootstrap.Services | None = None

    @contextlib.contextmanager
    def _as_the_app(self) -> Iterator[bootstrap.Services]:
        """The app's settings in the environment and its services in place, for one call."""
        with contextlib.ExitStack() as stack:
            stack.enter_context(environ(self.environment))
            if self.world.credential == "azure-cli":
                # A maintainer's `az login` stands in for the managed identity; everything else is unchanged.
                stack.enter_context(
                    mock.patch(
                        "shared.adapters.identity.ManagedIdentityCredential",
                        lambda **_: AsyncAzureCliCredential(tenant_id=self.environment["HOME_TENANT_ID"]),
                    )
                )
            if self._services is None:
                self._services = bootstrap.build(load_settings(self.environment))
            bootstrap.override(self._services)
            stack.callback(bootstrap.override, None)
            yield self._services

    async def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        found = route(method, urlsplit(path).path)
        if found is None:
            return Answer(method, path, 404, {}, "")
        function, route_params = found
        request = func.HttpRequest(
            method,
            f"http://localhost/api/{path}",
            headers=headers,
            params=dict(parse_qsl(urlsplit(path).query)),
            route_params=route_params,
            body=body,
        )
        with self._as_the_app():
            response = await FUNCTIONS[function](request)
        assert isinstance(response, func.HttpResponse)
        names = {k.lower(): v for k, v in response.headers.items()}
        names.setdefault("content-type", str(response.mimetype))
        return Answer(method, path, response.status_code, names, response.get_body().decode())

    async def leftovers(self) -> tuple[list[Leftover], list[str]]:
        found: list[Leftover] = []
        problems: list[str] = []
        catalog = {p.id for p in live_catalog()}
        for tenant in self.world.tenants():
            for where, collection in (
                ("Entra", "applications"),
                ("Entra deleted items", "directory/deletedItems/microsoft.graph.application"),
            ):
                try:
                    async for app in self._graph_list(tenant, collection):
                        run = RunId.find(app.get("displayName"))
                        integration = str(app.get("uniqueName") or "").removeprefix(f"{run}-")
                        # In process the unique name is `{run}-{integration}`: anything else is not ours to sweep.
                        if run is not None and integration in catalog:
                            found.append(Leftover(run, tenant, integration, where))
                except Exception as error:  # noqa: BLE001 - reported; the rest of the sweep goes on
                    problems.append(f"{where} of tenant {tenant}: {type(error).__name__}: {error}")
        try:
            async for name in self._vault_names():
                match = SECRET_NAME.fullmatch(name)
                run = RunId.find(name)
                if match and run and match["integration"] in catalog:
                    found.append(Leftover(run, match["tenant"], match["integration"], "Key Vault"))
        except Exception as error:  # noqa: BLE001
            problems.append(f"Key Vault: {type(error).__name__}: {error}")
        return found, problems

    async def _graph_list(self, tenant: str, collection: str) -> AsyncIterator[dict[str, Any]]:
        """Apps whose display name starts with `live-`, with the service's own credential for the tenant."""
        with self._as_the_app() as services:
            assert services.identity is not None
            token = await services.identity.management_credential(tenant).get_token(services.settings.graph_scope)
        settings = services.settings
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=settings.tls_ca_bundle) if settings.tls_ca_bundle else True
        )
        query = quote("startswith(displayName,'live-')")
        url: str | None = f"{settings.graph_base_url}/{collection}?$filter={query}&$select=id,displayName,uniqueName"
        async with httpx.AsyncClient(verify=verify, timeout=30) as http:
            while url:
                response = await http.get(url, headers={"Authorization": f"Bearer {token.token}"})
                response.raise_for_status()
                page = response.json()
                for app in page.get("value") or []:
                    yield app
                url = page.get("@odata.nextLink")

    async def _vault_names(self) -> AsyncIterator[str]:
        with self._as_the_app() as services:
            assert services.vault is not None
            client = services.vault.client
        async for properties in client.list_properties_of_secrets():
            if properties.name and properties.name.startswith("live-"):
                yield properties.name
        if self.world.purge_secrets:
            async for deleted in client.list_deleted_secrets():
                if deleted.name and deleted.name.startswith("live-"):
                    yield deleted.name

    async def offboard_leftover(self, leftover: Leftover) -> Answer:
        # The leftover's own NAME_PREFIX (its run id): the same DELETE, by the app that made it.
        earlier = InProcessTarget(self.world, leftover.run)
        try:
            answer = await earlier.delete(leftover.tenant, leftover.integration)
            if answer.status != 200:
                answer = await earlier.delete(leftover.tenant, leftover.integration, purge=False)
        finally:
            await earlier.close()
        self.answers += earlier.answers
        return answer

    async def close(self) -> None:
        if self._services is not None:
            await self._services.close()
            self._services = None


class HttpTarget(Target):
    """A running function app, over HTTP with its function key, as the vendor's backend calls it."""

    kind = "http"

    def __init__(self, world: World, run: RunId) -> None:
        super().__init__(world, run)
        assert world.function_url and world.function_key
        self._http = httpx.AsyncClient(
            base_url=world.function_url.rstrip("/") + "/api/",
            headers={"x-functions-key": world.function_key},
            # Azure's front end ends an HTTP request to a function app after 230 s.
            timeout=httpx.Timeout(230, connect=30),
        )

    async def _send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Answer:
        response = await self._http.request(method, path, content=body or None, headers=headers)
        names = {k.lower(): v for k, v in response.headers.items()}
        return Answer(method, path, response.status_code, names, response.text)

    async def leftovers(self) -> tuple[list[Leftover], list[str]]:
        """The deployment's NAME_PREFIX is fixed, so each tenant holds at most one registration of the
        integration: the suite's if its display name carries a run id."""
        found: list[Leftover] = []
        problems: list[str] = []
        for tenant in self.world.tenants():
            answer = await self.get(tenant, self.world.integration)
            if answer.status == 200:
                run = RunId.find(((answer.body or {}).get("application") or {}).get("displayName"))
                if run is not None:
                    found.append(Leftover(run, tenant, self.world.integration, "the API"))
            elif answer.status != 404:
                problems.append(str(answer))
        return found, problems

    async def offboard_leftover(self, leftover: Leftover) -> Answer:
        answer = await self.delete(leftover.tenant, leftover.integration)
        if answer.status != 200:
            answer = await self.delete(leftover.tenant, leftover.integration, purge=False)
        return answer

    async def close(self) -> None:
        await self._http.aclose()


def make_target(kind: str, world: World, run: RunId) -> Target:
    return InProcessTarget(world, run) if kind == "in-process" else HttpTarget(world, run)
