"""Hostile input on every route and on the Event Grid payload: a 4xx problem+json or a success, never a 5xx,
and nothing created for input that is invalid (property-based, seeded by hypothesis).

The tenants drawn include the ones where something could be made: the home tenant (reachable in the
single-tenant mode these tests run in, in every spelling) with one other part of the input wrong, and
the stand-in's customer tenants."""

from __future__ import annotations

import json
import uuid
from typing import Any

import azure.functions as func
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.functions.conftest import FUNCTIONS, Api

CUSTOMER = "a3c5e2d1-7b4f-4e8a-9c61-0f2e3d4b5a69"  # not reachable in single-tenant mode: 403, nothing made
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

hostile_text = st.one_of(
    st.text(max_size=80),
    st.sampled_from(["../..", "%2e%2e%2f", "..\\\\", "<script>", "' or 1=1 --", "\x00", "a" * 5000, "🙂", "\u202e"]),
)
tenant_ids = st.one_of(
    hostile_text,
    st.just("00000000-0000-0000-0000-000000000000"),
    st.uuids().map(lambda u: str(u).upper()),
    st.uuids().map(lambda u: "{" + str(u) + "}"),
    st.just(CUSTOMER),
)
integrations = st.one_of(hostile_text, st.sampled_from(["m365-defender", "sentinel", "Sentinel", "sentinel/../x"]))
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=15), children, max_size=3),
    max_leaves=8,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["displayName", "secretLifetimeDays", "notes", "retirePrevious", "permissions", "x"]),
        json_values,
        max_size=3,
    ).map(lambda d: json.dumps(d).encode()),
    # Nesting deep enough to exhaust a recursive parser, in a body well under the size limit.
    st.tuples(st.integers(500, 5000), st.sampled_from([b"[", b'{"a":'])).map(lambda t: t[1] * t[0]),
)
content_types = st.sampled_from(
    ["application/json", "text/plain", "application/json; charset=utf-8", "", "multipart/form-data"]
)
# Bodies that are never a valid onboarding request, whatever the tenant and integration: never blank
# (a blank body is a valid PUT), and wrong in one way each.
invalid_bodies = st.one_of(
    st.tuples(
        st.dictionaries(st.sampled_from(["displayName", "notes"]), st.text(max_size=20), max_size=2),
        st.dictionaries(st.sampled_from(["permissions", "appRoles", "retirePrevious", "x"]), json_values, min_size=1),
    ).map(lambda t: json.dumps(t[0] | t[1]).encode()),  # a field PUT does not take
    json_values.filter(lambda v: not isinstance(v, dict)).map(lambda v: json.dumps(v).encode()),  # not an object
    st.binary(max_size=100).map(lambda b: b"\xff" + b),  # not UTF-8
    st.sampled_from(
        [{"secretLifetimeDays": v} for v in (-1, 0, 10**6, "ninety", [90])]
        + [{"displayName": v} for v in ("a" * 121, 5, {"a": 1})]
    ).map(lambda d: json.dumps(d).encode()),  # a known field with a value it cannot take
    st.integers(500, 5000).map(lambda n: b"[" * n),  # nested too deep
)


def spellings(tenant: str) -> st.SearchStrategy[str]:
    """A tenant id as a caller might write it; only the first two name it (validation lower-cases)."""
    return st.sampled_from([tenant, tenant.upper(), "{" + tenant + "}", " " + tenant, tenant.replace("-", "")])


def reachable_tenants(api: Api) -> st.SearchStrategy[str]:
    """The home tenant in any spelling, and every customer tenant the stand-in knows."""
    return st.one_of(spellings(api.stand_in.home_tenant_id), st.sampled_from(api.stand_in.customer_tenant_ids))


def invalid_put(api: Api) -> st.SearchStrategy[tuple[str, str, bytes, str]]:
    """(tenant, integration, body, content type) of a PUT that must create nothing, one way or another."""
    home, catalog_ids = spellings(api.stand_in.home_tenant_id), sorted(p.id for p in api.services.catalog)
    unknown = integrations.filter(lambda i: api.services.catalog.get(i) is None)
    return st.one_of(
        st.tuples(tenant_ids, integrations, bodies, content_types),  # hostile everywhere
        st.tuples(home, unknown, bodies, content_types),  # the home tenant, an integration not in the catalog
        st.tuples(home, st.sampled_from(catalog_ids), invalid_bodies, content_types),  # ... a bad body
        st.tuples(st.sampled_from(api.stand_in.customer_tenant_ids), integrations, bodies, content_types),
    )


def fingerprint(api: Api) -> str:
    """What this test's services could have created: apps under its prefix, and the vault's secret names."""
    state = api.stand_in.state()
    prefix = api.services.settings.name_prefix
    apps = [
        a["uniqueName"] for t in state["tenants"].values() for a in t["applications"]
        if str(a.get("uniqueName") or "").startswith(prefix)
    ]  # fmt: skip
    return json.dumps([sorted(apps), sorted(n for n in state["vault"]["secrets"] if n.startswith(prefix))])


def assert_problem_or_success(response: func.HttpResponse) -> None:
    assert response.status_code < 500, response.get_body()[:300]
    if response.status_code >= 400:
        assert response.mimetype == "application/problem+json"
        problem = json.loads(response.get_body())
        assert {"type", "title", "status"} <= set(problem) and problem["status"] == response.status_code
        assert "Traceback" not in response.get_body().decode()


@SETTINGS
@given(data=st.data())
async def test_put_never_fails_with_a_5xx_and_invalid_input_creates_nothing(api: Api, data: st.DataObject) -> None:
    tenant, integration, body, content_type = data.draw(invalid_put(api))
    before = fingerprint(api)
    route = {"tenantId": tenant, "integration": integration}
    response = await api.call(
        "onboard_integration",
        "PUT",
        f"tenants/{uuid.uuid4()}/integrations/x",
        route,
        body,
        {"content-type": content_type},
    )
    assert_problem_or_success(response)
    assert response.status_code >= 400  # none of these inputs is a valid onboarding of a reachable tenant
    assert fingerprint(api) == before


@SETTINGS
@given(
    function=st.sampled_from(["get_integration", "offboard_integration", "rotate_now"]),
    data=st.data(),
    integration=integrations,
    body=bodies,
    query=st.dictionaries(st.sampled_from(["purgeApplication", "purgeSecrets", "x"]), st.text(max_size=10), max_size=2),
)
async def test_other_routes_never_fail_with_a_5xx(
    api: Api, function: str, data: st.DataObject, integration: str, body: bytes, query: dict[str, str]
) -> None:
    tenant = data.draw(st.one_of(tenant_ids, reachable_tenants(api)))  # nothing onboarded there: nothing to act on
    before = fingerprint(api)
    method = {"get_integration": "GET", "offboard_integration": "DELETE", "rotate_now": "POST"}[function]
    request = func.HttpRequest(
        method, "http://localhost/api/x", headers={"content-type": "application/json"}, params=query,
        route_params={"tenantId": tenant, "integration": integration}, body=body,
    )  # fmt: skip
    response = await FUNCTIONS[function](request)
    assert_problem_or_success(response)
    assert fingerprint(api) == before


@SETTINGS
@given(data=st.data())
async def test_consent_route_never_fails_with_a_5xx(api: Api, data: st.DataObject) -> None:
    tenant = data.draw(st.one_of(tenant_ids, reachable_tenants(api)))
    request = func.HttpRequest("GET", "http://localhost/api/x", route_params={"tenantId": tenant}, body=b"")
    assert_problem_or_success(await FUNCTIONS["tenant_consent"](request))


event_data = st.one_of(
    json_values,
    st.fixed_dictionaries(
        {
            "ObjectName": hostile_text,
            "VaultName": st.sampled_from(["127.0.0.1", "other", ""]),
            "ObjectType": st.sampled_from(["Secret", "secret", "Key", ""]),
        }
    ),
)


@SETTINGS
@given(
    event_type=st.sampled_from(["Microsoft.KeyVault.SecretNearExpiry", "microsoft.keyvault.secretexpired", "x", ""]),
    data=event_data,
)
async def test_event_grid_garbage_is_ignored_without_error(api: Api, event_type: str, data: Any) -> None:
    before = fingerprint(api)
    event = func.EventGridEvent(
        id=str(uuid.uuid4()),
        data=data,
        topic="t",
        subject="s",
        event_type=event_type,
        event_time=None,
        data_version="1",
    )
    await FUNCTIONS["secret_near_expiry"](event)
    assert fingerprint(api) == before


async def test_escalation_attempts_are_refused_and_create_nothing(api: Api) -> None:
    """Asking for more than the catalog grants, for another tenant, or around the routes: refused, nothing made."""
    home = api.stand_in.home_tenant_id
    before = fingerprint(api)
    attempts = {
        # Permissions come from the catalog's profile only; a body cannot add one.
        "permission in the body": (home, "sentinel", b'{"permissions": ["RoleManagement.ReadWrite.Directory"]}', 400),
        "integration outside the catalog": (home, "global-administrator", b"", 404),
        "route trick": (home, "sentinel/../m365-defender", b"", 400),
        # Entra's multi-tenant aliases are not directory ids: a token for "common" must never be asked for.
        "common": ("common", "sentinel", b"", 400),
        "organizations": ("organizations", "sentinel", b"", 400),
        "another tenant": (CUSTOMER, "sentinel", b"", 403),  # single-tenant mode reaches only its home
        "Microsoft accounts' tenant": ("9188040d-6c67-4c5b-b112-36a304b66dad", "sentinel", b"", 403),
    }
    for name, (tenant, integration, body, status) in attempts.items():
        response = await api.put(tenant, integration, body)
        assert response.status_code == status, (name, response.get_body())
        assert_problem_or_success(response)
    rotate = await api.call(
        "rotate_now", "POST", f"tenants/{home}/integrations/sentinel/rotate",
        {"tenantId": home, "integration": "sentinel"}, b'{"retirePrevious": "immediately", "integration": "x"}',
        {"content-type": "application/json"},
    )  # fmt: skip
    assert rotate.status_code == 400 and "integration" in json.loads(rotate.get_body())["detail"]
    assert fingerprint(api) == before


async def test_deeply_nested_json_is_a_400_and_not_a_recursion_error(api: Api) -> None:
    # json.loads recurses once per level: about a thousand levels, a 3 KB body, raise RecursionError.
    home = api.stand_in.home_tenant_id
    route = {"tenantId": home, "integration": "sentinel"}
    before = fingerprint(api)
    nested = {
        "open arrays": b"[" * 3000,
        "balanced arrays": b"[" * 1500 + b"]" * 1500,
        "objects inside a field": b'{"notes": ' + b'{"a": ' * 600 + b"1" + b"}" * 601,
        "strings do not count": b'{"notes": "' + b"[" * 3000 + b'"}',
    }
    for name, body in nested.items():
        for function, method, path in (
            ("onboard_integration", "PUT", f"tenants/{home}/integrations/sentinel"),
            ("rotate_now", "POST", f"tenants/{home}/integrations/sentinel/rotate"),
        ):
            response = await api.call(function, method, path, route, body, {"content-type": "application/json"})
            assert_problem_or_success(response)
            problem = json.loads(response.get_body())
            assert response.status_code == 400, (name, function, problem)
            if name == "strings do not count":  # brackets inside a string are text: refused for what it is
                assert problem["field"] == "notes", problem
            else:
                assert problem["field"] == "body" and "nest" in problem["detail"], (name, problem)
    assert fingerprint(api) == before
