"""Hostile and malformed requests get Azure's 4xx, never a 500, and leave nothing half-written.

These tests send raw HTTP on purpose: the SDKs cannot produce malformed JSON or traversal
paths. Everything else about the services is tested through the SDKs.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from azure.identity import ManagedIdentityCredential
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.launcher import StandIn


@pytest.fixture(scope="module")
def raw(stand_in: StandIn, managed_identity_env: None) -> Iterator[httpx.Client]:
    identity = ManagedIdentityCredential()
    graph_token = identity.get_token("https://graph.microsoft.com/.default").token
    vault_token = identity.get_token("https://vault.azure.net/.default").token

    def authorize(request: httpx.Request) -> None:
        token = vault_token if "/secrets" in request.url.path else graph_token
        request.headers.setdefault("authorization", f"Bearer {token}")

    client = httpx.Client(
        base_url=stand_in.authority,
        verify=ssl.create_default_context(cafile=stand_in.ca_bundle),
        event_hooks={"request": [authorize]},
        timeout=30,
    )
    with client:
        yield client


def snapshot(stand_in: StandIn) -> str:
    state = stand_in.state()
    state.pop("now")
    return json.dumps(state, sort_keys=True)


JSON_HEADERS = {"content-type": "application/json"}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b'{"displayName": 42}',
        b'{"displayName": ""}',
        b'{"displayName": "' + b"x" * 121 + b'"}',
        b'{"displayName": "ok", "tags": ["has space"]}',
        b'{"displayName": "ok", "tags": ["dup", "DUP"]}',
        b'{"displayName": "ok", "signInAudience": "Everyone"}',
        b'{"displayName": "ok", "appId": "00000000-0000-0000-0000-000000000001"}',
        b'{"displayName": "ok", "requiredResourceAccess": [{"resourceAppId": "x", "resourceAccess": [{"id": "nope", "type": "Role"}]}]}',
        b'{"displayName": "ok", "unknownThing": 1}',
        b"\xff\xfe\x00",
    ],
)
def test_malformed_application_bodies_are_400_and_create_nothing(
    raw: httpx.Client, stand_in: StandIn, body: bytes
) -> None:
    before = snapshot(stand_in)
    response = raw.post("/v1.0/applications", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in ("BadRequest", "Request_BadRequest")
    assert snapshot(stand_in) == before


@pytest.mark.parametrize(
    "path",
    [
        "/v1.0/applications/..%2F..%2Fsecrets",
        "/v1.0/applications/00000000-0000-0000-0000-00000000000g",
        "/v1.0/servicePrincipals/%27%20or%201%3D1",
        "/v1.0/applications(uniqueName='x')/../../secrets",
        "/v1.0/nothingHere",
    ],
)
def test_odd_graph_paths_are_4xx(raw: httpx.Client, path: str) -> None:
    response = raw.get(path)
    assert 400 <= response.status_code < 500
    assert "error" in response.json()


@pytest.mark.parametrize("path", ["/secrets/a/b/c?api-version=2025-07-01", "/deletedsecrets?api-version=7.4&x=../.."])
def test_odd_vault_paths_answer_in_key_vaults_error_shape(raw: httpx.Client, path: str) -> None:
    response = raw.post(path)
    assert 400 <= response.status_code < 500
    assert set(response.json()["error"]) >= {"code", "message"}


def test_graph_tolerates_the_sdks_double_slash(raw: httpx.Client) -> None:
    response = raw.get("/v1.0//applications")
    assert response.status_code == 200
    assert response.json()["@odata.context"].endswith("#applications")


@pytest.mark.parametrize(
    "name",
    ["has_underscore", "dot.name", "x" * 128, "%2E%2E", "..", "semi;colon", "sp%20ace"],
)
def test_invalid_secret_names_are_bad_parameter(raw: httpx.Client, stand_in: StandIn, name: str) -> None:
    before = snapshot(stand_in)
    response = raw.put(f"/secrets/{name}?api-version=2025-07-01", json={"value": "v"})
    assert response.status_code in (400, 404)
    if response.status_code == 400:
        assert response.json()["error"]["code"] == "BadParameter"
    assert snapshot(stand_in) == before


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"value": 5}',
        b'{"value": "v", "tags": {"a": 1}}',
        b'{"value": "v", "attributes": {"exp": "soon"}}',
    ],
)
def test_malformed_secret_bodies_are_bad_parameter(raw: httpx.Client, stand_in: StandIn, body: bytes) -> None:
    before = snapshot(stand_in)
    response = raw.put("/secrets/well-formed?api-version=2025-07-01", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "BadParameter"
    assert snapshot(stand_in) == before


def test_token_endpoint_refuses_non_form_bodies(raw: httpx.Client, stand_in: StandIn) -> None:
    response = raw.post(f"/{stand_in.home_tenant_id}/oauth2/v2.0/token", json={"grant_type": "client_credentials"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.dictionaries(
        st.sampled_from(["displayName", "tags", "notes", "requiredResourceAccess", "web", "x"]), json_values, max_size=4
    )
)
def test_no_application_body_makes_graph_fail_with_a_5xx(raw: httpx.Client, body: dict[str, object]) -> None:
    response = raw.post("/v1.0/applications", json=body)
    assert response.status_code < 500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(min_size=1, max_size=40), body=json_values)
def test_no_secret_request_makes_key_vault_fail_with_a_5xx(raw: httpx.Client, name: str, body: object) -> None:
    response = raw.put(f"/secrets/{quote(name, safe='')}?api-version=2025-07-01", json=body)
    assert response.status_code < 500
