"""The warmup function, what importing the app loads and what composing its services does, and TLS to the stand-in
without a new context (and connection) per request."""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.functions.warmup import WarmUpContext

from emulator.launcher import StandIn
from shared.adapters import tls
from shared.adapters.token_check import TokenRoleChecker
from shared.domain.model import Secret
from shared.domain.ports import NotReplicatedYet
from tests.functions.conftest import FUNCTIONS, REGISTERED, Api, body_of

REPO = Path(__file__).resolve().parents[2]
# Microsoft's SDKs and what they bring, but azure.functions (which the host's indexing needs): none is loaded by
# `import function_app`, every one the onboarding needs by the first services() (bench/cold_start.py).
COMPOSED_ONLY = (
    "azure.identity", "azure.keyvault", "azure.storage", "azure.monitor", "azure.core", "msgraph", "msgraph_core",
    "kiota_abstractions", "aiohttp", "httpx", "opentelemetry.sdk", "cryptography", "msal",
)  # fmt: skip
PROBE = f"""
import json, sys
def loaded():
    return sorted({{p for p in {COMPOSED_ONLY!r} for n in sys.modules if n == p or n.startswith(p + ".")}})
import function_app
function_app.app.get_functions()
at_import = loaded()
from shared import bootstrap
bootstrap.services()
print(json.dumps([at_import, loaded()]))
"""


def test_importing_the_app_loads_no_sdk_but_azure_functions_and_composing_it_loads_them(stand_in: StandIn) -> None:
    """What every new instance pays before the host indexes it: the routes, not the SDKs. With Application Insights
    configured as in Azure (its exporter's pipeline too is built on composition)."""
    env = dict(
        os.environ, **stand_in.app_settings(), APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
        APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=00000000-0000-0000-0000-000000000000;"
        "IngestionEndpoint=http://127.0.0.1:9/",
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, check=True)
    at_import, composed = json.loads(done.stdout.strip().splitlines()[-1])
    assert at_import == []
    assert set(composed) >= {"azure.identity", "azure.keyvault", "msgraph", "aiohttp", "opentelemetry.sdk"}


def test_warmup_is_registered_as_the_hosts_warmup_trigger() -> None:
    (warmup,) = [f for f in REGISTERED if f.get_function_name() == "warmup"]
    trigger = warmup.get_trigger()
    assert trigger is not None and trigger.get_binding_name() == "warmupTrigger"


async def test_warmup_changes_nothing_and_the_first_put_after_it_works(api: Api) -> None:
    before = api.stand_in.state()
    await FUNCTIONS["warmup"](WarmUpContext())
    after = api.stand_in.state()
    home = api.stand_in.home_tenant_id
    assert after["tenants"][home]["applications"] == before["tenants"][home]["applications"]
    assert after["vault"]["secrets"] == before["vault"]["secrets"]

    response = await api.put(home, "sentinel")
    assert response.status_code == 201, body_of(response)


async def test_a_failing_warmup_step_is_logged_and_left_to_the_first_request(
    api: Api, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unavailable(*args: Any) -> None:
        raise ConnectionError("Graph is down")

    assert api.services.directory is not None
    monkeypatch.setattr(api.services.directory, "password_policy", unavailable)
    with caplog.at_level(logging.WARNING, logger="shared.usecases.warm_up"):
        await FUNCTIONS["warmup"](WarmUpContext())
    assert "warm-up: Graph failed (ConnectionError)" in caplog.text


async def test_key_vault_requests_build_no_tls_context_each(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-core turns a CA path into a new SSLContext per request (a file read on the event loop, and a new
    connection with a full handshake); the product hands it one context instead."""
    assert api.services.vault is not None
    await api.services.vault.read("warm-connection")
    built: list[object] = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    for name in ("a-missing-secret", "another-missing-secret", "a-third-one"):
        assert await api.services.vault.read(name) is None
    assert built == []


@pytest.mark.parametrize("proxy", [None, "http://proxy.example:3128"])
async def test_the_environment_is_read_only_for_a_configured_proxy(
    proxy: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In Azure (no CA bundle) the public roots; and aiohttp's per-request proxy and ~/.netrc lookups (a
    worker thread each time) only when a proxy is configured."""
    for name in tls.PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    if proxy is not None:
        monkeypatch.setenv("HTTPS_PROXY", proxy)
    transport = tls.azure_transport(None)["transport"]
    await transport.open()
    try:
        assert transport.session.trust_env is (proxy is not None)
        assert transport.session.connector._ssl is True  # aiohttp's default context: the public roots
    finally:
        await transport.close()


async def test_proving_a_secret_builds_no_tls_context_per_token_request(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for the token requests that prove a new secret: one per check, each its own credential."""
    client_id = body_of(await api.put(api.stand_in.home_tenant_id, "sentinel"))["application"]["clientId"]
    checker = TokenRoleChecker(api.services.settings)
    built = []
    real = ssl.create_default_context

    def counting(*args: Any, **kwargs: Any) -> ssl.SSLContext:
        built.append(kwargs.get("cafile"))
        return real(*args, **kwargs)

    monkeypatch.setattr(ssl, "create_default_context", counting)
    wrong = Secret("not-the-secret")  # a refused request goes through the same transport
    sessions = []
    real_session = aiohttp.ClientSession.__init__

    def counting_sessions(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        sessions.append(self)
        real_session(self, *args, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "__init__", counting_sessions)
    try:
        for _ in range(3):
            with pytest.raises(NotReplicatedYet):  # Entra's "invalid secret", which a new secret also gets at first
                await checker.granted_roles(
                    api.stand_in.home_tenant_id, client_id, wrong, "https://api.loganalytics.io/.default"
                )
    finally:
        await checker.close()
    assert built == []
    # One connection pool for every proof: a new session would mean a new TCP and TLS handshake per request.
    assert len(sessions) == 1
