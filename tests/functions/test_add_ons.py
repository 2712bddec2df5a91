"""Connections with add-ons, through the real handlers: one app, the add-ons a caller names granted beside the base
permissions, converged when they change, never implied; Exchange's remaining step reported."""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import replace
from typing import Any

import jwt
import pytest
from azure.identity import ClientSecretCredential

from emulator.launcher import StandIn
from shared.domain.catalog import Catalog, load_catalog
from tests.azurite import Azurite
from tests.functions.conftest import Api, app_environment, body_of, serving
from tests.functions.test_audit import events
from tests.functions.test_rotation import stored

MTP = "8ee8fdad-f234-4243-8f3b-15c294843740"
MTP_SCOPE = "https://api.security.microsoft.com/.default"
CLOUD_APPS_SCOPE = "05a65629-4c1b-48c1-a78b-804c4abdd4af/.default"
ATP_SCOPE = "https://api.securitycenter.microsoft.com/.default"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Entra role template ids: https://learn.microsoft.com/entra/identity/role-based-access-control/permissions-reference
EXCHANGE_ADMINISTRATOR = "29232cdf-9323-42fd-ade2-1d097af3e4de"
APPLICATION_ADMINISTRATOR = "9b895d92-2cd3-44c7-9d02-a6ac2d5ea5c3"


def body(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def roles_for(api: Api, scope: str) -> set[str]:
    """The roles a token got with the stored secret holds for one resource API."""
    secret, tags = stored(api, "m365-defender")
    credential = ClientSecretCredential(
        api.stand_in.home_tenant_id, tags["client-id"], secret, authority=api.stand_in.authority,
        disable_instance_discovery=True, connection_verify=api.stand_in.ca_bundle,
    )  # fmt: skip
    token = credential.get_token(scope).token
    return set(jwt.decode(token, options={"verify_signature": False}).get("roles", []))


def granted_by_add_on(state: dict[str, Any]) -> dict[str | None, set[str]]:
    found: dict[str | None, set[str]] = {}
    for permission in state["permissions"]:
        assert permission["granted"], permission
        found.setdefault(permission["addOn"], set()).add(permission["permission"])
    return found


async def test_the_catalog_lists_each_connections_add_ons_with_their_high_impact_reasons(api: Api) -> None:
    response = await api.call("list_integrations", "GET", "integrations")
    by_id = {i["id"]: i for i in body_of(response)["integrations"]}
    add_ons = {a["id"]: a for a in by_id["m365-defender"]["addOns"]}
    assert set(add_ons) == {"defender-xdr", "cloud-apps", "live-response", "exchange", "isolate-devices",
                            "revoke-sessions"}  # fmt: skip
    assert add_ons["defender-xdr"]["highImpact"] is None
    for high in ("live-response", "exchange", "isolate-devices", "revoke-sessions"):
        assert add_ons[high]["highImpact"]["reason"], high
    assert (
        add_ons["exchange"]["credentialTypes"] == ["certificate"] and "{appId}" in add_ons["exchange"]["remainingStep"]
    )
    assert by_id["m365-defender"]["highImpact"] is None, "the base connection stays read only"


async def test_add_ons_are_granted_on_the_same_app_kept_by_a_plain_put_and_removed_by_naming_fewer(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    base = await api.put(tenant, "m365-defender")
    assert base.status_code == 201, body_of(base)
    assert body_of(base)["addOns"] == [] and roles_for(api, MTP_SCOPE) == set()
    [app] = api.apps()

    added = await api.put(tenant, "m365-defender", body(addOns=["defender-xdr", "cloud-apps"]))
    assert added.status_code == 200, body_of(added)
    state = body_of(added)
    assert state["addOns"] == ["defender-xdr", "cloud-apps"] and state["application"]["clientId"] == app["appId"]
    by_add_on = granted_by_add_on(state)
    assert by_add_on["defender-xdr"] == {"Incident.Read.All", "AdvancedHunting.Read.All"}
    assert by_add_on["cloud-apps"] == {"investigation.read"}
    assert "AuditLog.Read.All" in by_add_on[None]
    assert roles_for(api, MTP_SCOPE) == {"Incident.Read.All", "AdvancedHunting.Read.All"}
    assert roles_for(api, CLOUD_APPS_SCOPE) == {"investigation.read"}
    assert [a["appId"] for a in api.apps()] == [app["appId"]], "the same app, not another"

    kept = await api.put(tenant, "m365-defender")  # no addOns: the registration's own
    assert kept.status_code == 200 and body_of(kept)["outcome"] == "complete", body_of(kept)
    assert body_of(kept)["addOns"] == ["defender-xdr", "cloud-apps"]
    read = body_of(await api.get(tenant, "m365-defender"))
    assert read["addOns"] == ["defender-xdr", "cloud-apps"] and read["drift"] == [], read

    fewer = await api.put(tenant, "m365-defender", body(addOns=["cloud-apps"]))
    assert fewer.status_code == 200, body_of(fewer)
    assert body_of(fewer)["addOns"] == ["cloud-apps"]
    assert roles_for(api, MTP_SCOPE) == set(), "the removed add-on's grants are revoked"
    assert roles_for(api, CLOUD_APPS_SCOPE) == {"investigation.read"}
    none = body_of(await api.put(tenant, "m365-defender", body(addOns=[])))
    assert none["addOns"] == [] and {p["addOn"] for p in none["permissions"]} == {None}
    assert roles_for(api, CLOUD_APPS_SCOPE) == set()
    assert body_of(await api.get(tenant, "m365-defender"))["drift"] == []


async def test_high_impact_add_ons_are_never_implied(api: Api) -> None:
    """Neither the base connection nor a read-only add-on brings a high-impact role; only naming it does."""
    tenant = api.stand_in.home_tenant_id
    assert (await api.put(tenant, "m365-defender", body(addOns=["defender-xdr"]))).status_code == 201
    assert roles_for(api, ATP_SCOPE) == set()
    assert "User.RevokeSessions.All" not in roles_for(api, GRAPH_SCOPE)
    named = await api.put(tenant, "m365-defender", body(addOns=["defender-xdr", "isolate-devices", "revoke-sessions"]))
    assert named.status_code == 200, body_of(named)
    assert roles_for(api, ATP_SCOPE) == {"Machine.Isolate"}
    assert "User.RevokeSessions.All" in roles_for(api, GRAPH_SCOPE)


async def test_an_add_on_not_offered_or_a_type_it_does_not_take_is_a_400_that_changes_nothing(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    for request, field in (
        (body(addOns=["no-such-add-on"]), "addOns"),
        (body(addOns=["defender-xdr", "defender-xdr"]), "addOns"),
        (body(addOns="defender-xdr"), "addOns"),
        (body(addOns=["exchange"], credentialType="secret"), "credentialType"),
        (body(addOns=["defender-xdr"], credentialType="federated"), "addOns"),
    ):
        response = await api.put(tenant, "m365-defender", request)
        assert response.status_code == 400 and body_of(response)["field"] == field, (request, body_of(response))
    assert api.apps() == [], "nothing was created"
    # A registration with a secret does not switch type behind the caller's back for an add-on that needs another.
    assert (await api.put(tenant, "m365-defender")).status_code == 201
    switch = await api.put(tenant, "m365-defender", body(addOns=["exchange"]))
    assert switch.status_code == 400 and body_of(switch)["field"] == "addOns", body_of(switch)
    assert "certificate" in body_of(switch)["detail"]
    other = await api.put(tenant, "sentinel", body(addOns=["defender-xdr"]))
    assert other.status_code == 400 and "offered: none" in body_of(other)["detail"], body_of(other)


async def test_exchange_takes_a_certificate_and_reports_the_admins_remaining_step(api: Api) -> None:
    tenant = api.stand_in.home_tenant_id
    # A new registration names no type: the one type Exchange takes is the one it gets.
    response = await api.put(tenant, "m365-defender", body(addOns=["exchange"]))
    assert response.status_code == 201, body_of(response)
    state = body_of(response)
    assert state["credential"]["type"] == "certificate" and state["credential"]["verified"] is True
    assert granted_by_add_on(state)["exchange"] == {"Exchange.ManageAsApp"}
    [step] = state["remainingSteps"]
    assert state["application"]["clientId"] in step and state["servicePrincipalId"] in step, step
    assert "{" not in step, "every placeholder filled in"
    assert body_of(await api.get(tenant, "m365-defender"))["remainingSteps"] == [step]


async def test_exchanges_step_is_reported_until_the_apps_own_token_carries_an_exchange_role(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = api.stand_in.home_tenant_id
    created = body_of(await api.put(tenant, "m365-defender", body(addOns=["exchange"])))
    [step] = created["remainingSteps"]
    client_id = created["application"]["clientId"]

    def admin(method: str, role: str) -> None:
        api.stand_in.admin(method, f"/tenants/{tenant}/directory-roles", {"appId": client_id, "roleTemplateId": role})

    async def steps_after_put() -> list[str]:
        response = await api.put(tenant, "m365-defender")  # a plain PUT: keeps the add-ons, checks the step again
        assert response.status_code == 200, body_of(response)
        return list(body_of(response)["remainingSteps"])

    admin("POST", APPLICATION_ADMINISTRATOR)  # a role Exchange does not read
    assert await steps_after_put() == [step]

    admin("POST", EXCHANGE_ADMINISTRATOR)
    assert body_of(await api.get(tenant, "m365-defender"))["remainingSteps"] == [step], "a GET only reads"
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        assert await steps_after_put() == []
        assert await steps_after_put() == []
    done = [e for e in events(caplog) if e["operation"] == "step.done"]
    assert [(e["addOn"], e["directoryRoles"]) for e in done] == [("exchange", "Exchange Administrator")], "once"
    assert body_of(await api.get(tenant, "m365-defender"))["remainingSteps"] == []

    admin("DELETE", EXCHANGE_ADMINISTRATOR)  # the admin takes it back: the step is open again
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tenant_onboarding.audit"):
        assert await steps_after_put() == [step]
    assert [e["operation"] for e in events(caplog) if e["operation"].startswith("step.")] == ["step.reopened"]
    assert body_of(await api.get(tenant, "m365-defender"))["remainingSteps"] == [step]


async def test_a_superseded_profile_keeps_its_registrations_and_sends_new_ones_to_its_successor(
    stand_in: StandIn, clean_faults: StandIn, azurite: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """defender-endpoint-live-response is now defender-endpoint with the live-response add-on: a registration made
    with it goes on converging and says where to move; a new one is sent to the successor."""
    tenant, legacy = stand_in.home_tenant_id, "defender-endpoint-live-response"
    catalog = load_catalog()
    before = Catalog(
        {p.id: replace(p, superseded_by=None) if p.id == legacy else p for p in catalog}, catalog.allowed_permissions
    )
    app_environment(monkeypatch, stand_in, "s", azurite)
    async with serving(stand_in, catalog=before) as api:  # made before the catalog superseded it
        assert (await api.put(tenant, legacy)).status_code == 201
    async with serving(stand_in) as api:
        again = await api.put(tenant, legacy)
        assert again.status_code == 200 and body_of(again)["outcome"] == "complete", body_of(again)
        read = body_of(await api.get(tenant, legacy))
        assert read["supersededBy"] == {"integration": "defender-endpoint", "addOns": ["live-response"]}
        assert read["drift"] == [] and all(p["granted"] for p in read["permissions"])
        listed = body_of(await api.call("list_integrations", "GET", "integrations"))["integrations"]
        assert {i["id"]: i["supersededBy"] for i in listed}[legacy] == read["supersededBy"]
    monkeypatch.setenv("NAME_PREFIX", f"n{uuid.uuid4().hex[:10]}")  # a deployment with no such registration
    async with serving(stand_in) as api:
        refused = await api.put(tenant, legacy)
        problem = body_of(refused)
        assert refused.status_code == 400 and problem["field"] == "integration", problem
        assert "defender-endpoint" in problem["detail"] and "live-response" in problem["detail"]
        assert api.apps() == []
        moved = await api.put(tenant, "defender-endpoint", body(addOns=["live-response"]))
        assert moved.status_code == 201, body_of(moved)
        assert {p["permission"] for p in body_of(moved)["permissions"]} >= {"Machine.LiveResponse", "Alert.Read.All"}
