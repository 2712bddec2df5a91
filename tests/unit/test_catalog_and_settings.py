"""The catalog is a default-deny allow-list validated at start, and settings fail with the variable's name."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from shared.domain.catalog import CATALOG_FILE, CatalogError, load_catalog
from shared.domain.model import CredentialType
from shared.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[2]
GRAPH = "00000003-0000-0000-c000-000000000000"
DEFENDER = "fc780465-2017-40d4-a0c5-307022471b92"
EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"
SCOPES = {
    GRAPH: "https://graph.microsoft.com/.default",
    DEFENDER: "https://api.securitycenter.microsoft.com/.default",
    EXCHANGE: "https://outlook.office365.com/.default",
}
USER_READ_ALL = {"resourceAppId": GRAPH, "value": "User.Read.All", "id": "df021288-bdef-4463-88db-98f22de89214",
                 "impact": "read"}  # fmt: skip
LIVE_RESPONSE = {"resourceAppId": DEFENDER, "value": "Machine.LiveResponse", "id": "1629b959-c0af-42a1-92f0-f6162060bdf1",
                 "impact": "high", "reason": "Runs commands on onboarded devices."}  # fmt: skip
HIGH_IMPACT = {"reason": "Asked for by name when the vendor needs it."}


def catalog_with(
    tmp_path: Path,
    integrations: list[dict[str, Any]],
    allowed: list[dict[str, Any]] | None = None,
    resources: list[dict[str, Any]] | None = None,
) -> Path:
    """A catalog of `integrations`, with a public-cloud `resources` entry for each resource API they name."""
    named = {
        str(p.get("resourceAppId"))
        for entry in integrations
        for grants in (entry, *entry.get("addOns", []))
        for p in grants.get("permissions", [])
        if isinstance(p, dict)
    }
    if resources is None:
        resources = [api(app_id) for app_id in sorted(named & set(SCOPES))] or [api(GRAPH)]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"allowedPermissions": [USER_READ_ALL] if allowed is None else allowed,
                                "resources": resources, "integrations": integrations}))  # fmt: skip
    return path


def api(app_id: str, **scopes: str) -> dict[str, Any]:
    """A `resources` entry: the resource API's token scope per cloud (the public cloud's unless given)."""
    return {"resourceAppId": app_id, "name": app_id, "source": "https://learn.microsoft.com/graph/deployments",
            "scopes": scopes or {"AzurePublicCloud": SCOPES[app_id]}}  # fmt: skip


def resource(app_id: str, *roles: str) -> dict[str, Any]:
    return {"resourceAppId": app_id, "roles": list(roles)}


def profile(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "example",
        "displayName": "Example",
        "description": "",
        "permissions": [{"resourceAppId": GRAPH, "roles": ["User.Read.All"]}],
    }
    base.update(overrides)
    return base


def allowed(
    app_id: str, value: str, impact: str = "high", role_id: str = "0b9f1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d"
) -> dict[str, Any]:
    entry = {"resourceAppId": app_id, "value": value, "id": role_id, "impact": impact}
    return entry | ({"reason": "Reviewed and needed."} if impact == "high" else {})


def test_the_shipped_catalog_is_valid() -> None:
    catalog = load_catalog(CATALOG_FILE)
    assert [p.id for p in catalog] == [
        "m365-defender",
        "defender-endpoint",
        "defender-endpoint-live-response",
        "sentinel",
    ]
    sentinel = catalog.get("sentinel")
    assert sentinel is not None and {r.resource_name for r in sentinel.permissions} == {
        "Log Analytics API",
        "Microsoft Graph",
    }


@pytest.mark.parametrize(
    ("integrations", "complaint"),
    [
        ([profile(), profile()], "appears twice"),
        ([profile(id="Bad Id")], ".id"),
        ([profile(unknown=1)], "unknown fields"),
        ([profile(permissions=[])], "permissions"),
        ([profile(permissions=[{**profile()["permissions"][0], "resourceAppId": "graph"}])], "GUID"),
        ([profile(permissions=[{**profile()["permissions"][0], "roles": ["Directory.ReadWrite.All"]}])], "take over"),
        (
            [profile(permissions=[{**profile()["permissions"][0], "roles": ["AppRoleAssignment.ReadWrite.All"]}])],
            "take over",
        ),
        ([profile(permissions=[{**profile()["permissions"][0], "roles": ["A.B", "A.B"]}])], "duplicates"),
        ([profile(highImpact={"reason": ""})], "highImpact.reason"),
    ],
)
def test_an_invalid_catalog_is_refused(tmp_path: Path, integrations: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(CatalogError, match=complaint):
        load_catalog(catalog_with(tmp_path, integrations))


def test_an_entry_whose_apis_share_no_cloud_or_a_successor_missing_from_a_cloud_is_refused(tmp_path: Path) -> None:
    """Nothing is offered "everywhere" by accident: an add-on must exist in some cloud its connection does, and a
    superseded profile's successor wherever the profile does."""
    graph_only = api(
        GRAPH, AzureChinaCloud=SCOPES[GRAPH].replace("graph.microsoft.com", "microsoftgraph.chinacloudapi.cn")
    )
    defender = api(DEFENDER, AzurePublicCloud=SCOPES[DEFENDER])
    allowed_roles = [USER_READ_ALL, {**LIVE_RESPONSE, "value": "Machine.Read.All", "impact": "read", "id":
                     "ea8291d3-4b9a-44b5-bc3a-6cea3026dc79"}]  # fmt: skip
    nowhere = profile(
        addOns=[{"id": "machines", "displayName": "Machines", "permissions": [resource(DEFENDER, "Machine.Read.All")]}]
    )
    with pytest.raises(CatalogError, match="exist together in no cloud"):
        load_catalog(catalog_with(tmp_path, [nowhere], allowed_roles, [graph_only, defender]))
    old = profile(
        id="old", permissions=[resource(DEFENDER, "Machine.Read.All")], supersededBy={"integration": "example"}
    )
    successor = profile(permissions=[resource(GRAPH, "User.Read.All"), resource(DEFENDER, "Machine.Read.All")])
    with pytest.raises(CatalogError, match="does not exist in"):
        load_catalog(catalog_with(tmp_path, [successor, {**old, "clouds": ["AzurePublicCloud"]}], allowed_roles,
                                  [graph_only, api(DEFENDER, AzurePublicCloud=SCOPES[DEFENDER],
                                                   AzureChinaCloud=f"{DEFENDER}/.default")]))  # fmt: skip


@pytest.mark.parametrize(
    ("resources", "complaint"),
    [
        ([], "non-empty list of resource APIs"),
        ([api(GRAPH, AzurePublicCloud="http://x/.default")], r"scopes\.AzurePublicCloud"),
        ([api(GRAPH, AzurePublicCloud=f"{DEFENDER}/.default")], r"scopes\.AzurePublicCloud"),
        ([api(GRAPH, AzureGermanCloud="https://graph.microsoft.de/.default")], "cloud names"),
        ([api(GRAPH), api(GRAPH)], "appears twice"),
        ([{**api(GRAPH), "source": "https://example.com/endpoints"}], "source"),
        ([api(GRAPH), api(DEFENDER)], "no integration uses"),
        ([api(DEFENDER)], "not in resources"),
    ],
)
def test_an_invalid_resource_table_is_refused(tmp_path: Path, resources: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(CatalogError, match=complaint):
        load_catalog(catalog_with(tmp_path, [profile()], resources=resources))


# Issue 13: every role the escalation denylist let through, on the resource that publishes it.
ROLES_THE_DENYLIST_LET_THROUGH = [
    (GRAPH, "RoleAssignmentSchedule.ReadWrite.Directory"),
    (GRAPH, "RoleEligibilitySchedule.ReadWrite.Directory"),
    (GRAPH, "UserAuthenticationMethod.ReadWrite.All"),
    (GRAPH, "Domain.ReadWrite.All"),
    (GRAPH, "Organization.ReadWrite.All"),
    (GRAPH, "Policy.ReadWrite.PermissionGrant"),
    (GRAPH, "DeviceManagementScripts.ReadWrite.All"),
    (GRAPH, "DeviceLocalCredential.Read.All"),
    (GRAPH, "GroupMember.ReadWrite.All"),
    (GRAPH, "Sites.FullControl.All"),
    (EXCHANGE, "Exchange.ManageAsApp"),
    (EXCHANGE, "full_access_as_app"),
    (DEFENDER, "Ti.ReadWrite.All"),
    (DEFENDER, "Library.Manage"),
    (DEFENDER, "Machine.Offboard"),
]
# Of those, the ones that hand the credential the tenant (or every mailbox): refused even when reviewed.
TAKEOVER_ROLES = [
    (GRAPH, "RoleAssignmentSchedule.ReadWrite.Directory"),
    (GRAPH, "RoleEligibilitySchedule.ReadWrite.Directory"),
    (GRAPH, "UserAuthenticationMethod.ReadWrite.All"),
    (GRAPH, "Domain.ReadWrite.All"),
    (GRAPH, "Organization.ReadWrite.All"),
    (GRAPH, "Policy.ReadWrite.PermissionGrant"),
    (EXCHANGE, "full_access_as_app"),
    # and the ones the old denylist named
    (GRAPH, "Application.ReadWrite.All"),
    (GRAPH, "Application.ReadWrite.OwnedBy"),
    (GRAPH, "AppRoleAssignment.ReadWrite.All"),
    (GRAPH, "DelegatedPermissionGrant.ReadWrite.All"),
    (GRAPH, "Directory.ReadWrite.All"),
    (GRAPH, "RoleManagement.ReadWrite.Directory"),
    (GRAPH, "Policy.ReadWrite.ApplicationConfiguration"),
    (GRAPH, "Policy.ReadWrite.ConditionalAccess"),
]
# The rest can be granted, but only as high impact, in a profile a caller names.
HIGH_IMPACT_ROLES = [role for role in ROLES_THE_DENYLIST_LET_THROUGH if role not in TAKEOVER_ROLES]


@pytest.mark.parametrize(("app_id", "value"), ROLES_THE_DENYLIST_LET_THROUGH, ids=lambda v: v.split("-")[0])
def test_a_role_nobody_reviewed_is_refused(tmp_path: Path, app_id: str, value: str) -> None:
    with pytest.raises(CatalogError, match=r"not in allowedPermissions|take over"):
        load_catalog(catalog_with(tmp_path, [profile(permissions=[resource(app_id, value)])]))


@pytest.mark.parametrize(("app_id", "value"), TAKEOVER_ROLES, ids=lambda v: v.split("-")[0])
def test_a_takeover_role_is_refused_even_when_allow_listed_as_high_impact(
    tmp_path: Path, app_id: str, value: str
) -> None:
    path = catalog_with(
        tmp_path, [profile(highImpact=HIGH_IMPACT, permissions=[resource(app_id, value)])], [allowed(app_id, value)]
    )
    with pytest.raises(CatalogError, match=f"{re.escape(value)} would let the integration take over the tenant"):
        load_catalog(path)


@pytest.mark.parametrize(("app_id", "value"), HIGH_IMPACT_ROLES, ids=lambda v: v.split("-")[0])
def test_a_role_that_writes_or_acts_cannot_be_reviewed_as_read(tmp_path: Path, app_id: str, value: str) -> None:
    path = catalog_with(tmp_path, [profile(permissions=[resource(app_id, value)])], [allowed(app_id, value, "read")])
    with pytest.raises(CatalogError, match=f"{re.escape(value)} can write, act or read credentials; mark it 'high'"):
        load_catalog(path)


@pytest.mark.parametrize(("app_id", "value"), HIGH_IMPACT_ROLES, ids=lambda v: v.split("-")[0])
def test_a_high_impact_role_is_refused_in_a_profile_a_caller_gets_without_asking(
    tmp_path: Path, app_id: str, value: str
) -> None:
    path = catalog_with(tmp_path, [profile(permissions=[resource(app_id, value)])], [allowed(app_id, value)])
    with pytest.raises(
        CatalogError, match=f"{re.escape(value)} is high impact; only a profile that declares highImpact"
    ):
        load_catalog(path)


@pytest.mark.parametrize(("app_id", "value"), HIGH_IMPACT_ROLES, ids=lambda v: v.split("-")[0])
def test_a_reviewed_high_impact_role_loads_in_a_profile_that_declares_it(
    tmp_path: Path, app_id: str, value: str
) -> None:
    path = catalog_with(
        tmp_path, [profile(highImpact=HIGH_IMPACT, permissions=[resource(app_id, value)])], [allowed(app_id, value)]
    )
    (loaded,) = load_catalog(path)
    assert loaded.high_impact_reason == HIGH_IMPACT["reason"]
    assert loaded.permissions[0].high_impact == {value: "Reviewed and needed."}


def test_machine_live_response_is_refused_in_a_default_profile(tmp_path: Path) -> None:
    path = catalog_with(tmp_path, [profile(permissions=[resource(DEFENDER, "Machine.LiveResponse")])], [LIVE_RESPONSE])
    with pytest.raises(CatalogError, match=r"Machine\.LiveResponse is high impact"):
        load_catalog(path)


def test_defender_endpoint_grants_no_high_impact_role_and_live_response_is_its_own_profile() -> None:
    catalog = load_catalog(CATALOG_FILE)
    endpoint, live = catalog.get("defender-endpoint"), catalog.get("defender-endpoint-live-response")
    assert endpoint is not None and live is not None
    assert endpoint.high_impact_reason is None
    assert [r.high_impact for r in endpoint.permissions] == [{}]
    assert "Machine.LiveResponse" not in {role for _, role in endpoint.all_roles()}
    assert live.high_impact_reason and "quarantined files" in live.high_impact_reason
    assert live.all_roles() == endpoint.all_roles() | {(DEFENDER, "Machine.LiveResponse")}
    assert set(live.permissions[0].high_impact) == {"Machine.LiveResponse"}


def test_only_profiles_that_declare_high_impact_grant_a_high_impact_role() -> None:
    catalog = load_catalog(CATALOG_FILE)
    declared = {p.id for p in catalog if p.high_impact_reason}
    granting = {p.id for p in catalog if any(r.high_impact for r in p.permissions)}
    assert declared == granting == {"defender-endpoint-live-response"}


def test_no_high_impact_profile_is_a_default_anywhere() -> None:
    """A high-impact profile is one a caller names: no script, setting, template or code path picks it."""
    high = {p.id for p in load_catalog(CATALOG_FILE) if p.high_impact_reason}
    assert high, "the shipped catalog has a high-impact profile to guard"
    places = [REPO / "function_app.py", REPO / "host.json", REPO / "azure.yaml"]
    for folder in ("shared", "scripts", "infra", "bench"):
        places += [f for f in (REPO / folder).rglob("*") if f.is_file() and f != CATALOG_FILE]
    mentions = [
        (str(f.relative_to(REPO)), profile_id)
        for f in places
        if f.suffix not in (".pyc",)
        for profile_id in high
        if profile_id in f.read_text(errors="replace")
    ]
    assert mentions == []


@pytest.mark.parametrize(
    ("entries", "complaint"),
    [
        # A harmless name over a takeover role's id.
        (
            [{**USER_READ_ALL, "id": "19dbc75e-c2e2-444c-a770-ec69d8559fc7"}],
            "is Directory.ReadWrite.All on Microsoft Graph",
        ),
        # The same role reviewed twice, with two ids.
        ([USER_READ_ALL, {**USER_READ_ALL, "id": "7ab1d382-f21e-4acd-a863-ba3e13f7da61"}], "appears twice"),
        # Two roles claiming one id.
        ([USER_READ_ALL, {**USER_READ_ALL, "value": "Group.Read.All"}], "already listed as User.Read.All"),
    ],
)
def test_a_role_whose_id_differs_from_the_reviewed_one_is_refused_at_load(
    tmp_path: Path, entries: list[dict[str, Any]], complaint: str
) -> None:
    with pytest.raises(CatalogError, match=complaint):
        load_catalog(catalog_with(tmp_path, [profile()], entries))


@pytest.mark.parametrize(
    ("integrations", "entries", "complaint"),
    [
        ([profile()], [], "allowedPermissions: a non-empty list"),
        ([profile()], [USER_READ_ALL, allowed(GRAPH, "Group.Read.All", "read")], "no integration uses Group.Read.All"),
        ([profile()], [{k: v for k, v in LIVE_RESPONSE.items() if k != "reason"}], "reason: required"),
        ([profile()], [{**USER_READ_ALL, "impact": "low"}], "impact: 'read' or 'high'"),
        ([profile(highImpact=HIGH_IMPACT)], [USER_READ_ALL], "asks for no high-impact role"),
    ],
)
def test_an_invalid_allow_list_is_refused(
    tmp_path: Path, integrations: list[dict[str, Any]], entries: list[dict[str, Any]], complaint: str
) -> None:
    with pytest.raises(CatalogError, match=complaint):
        load_catalog(catalog_with(tmp_path, integrations, entries))


def test_each_role_carries_its_reviewed_id_for_the_run_time_check() -> None:
    catalog = load_catalog(CATALOG_FILE)
    reviewed = {(a.resource_app_id, a.value): a.id for a in catalog.allowed_permissions}
    for p in catalog:
        for r in (*p.permissions, *(r for a in p.add_ons for r in a.permissions)):
            assert dict(r.role_ids) == {role: reviewed[r.resource_app_id, role] for role in r.roles}


def test_the_allow_list_agrees_with_the_stand_in() -> None:
    """The stand-in serves the real first-party ids; the allow-list must pin the same ones, so neither drifts."""
    seed = json.loads((REPO / "emulator" / "seed.json").read_text())
    served = {app["appId"]: app["appRoles"] for app in seed["resourceApps"].values()}
    catalog = load_catalog(CATALOG_FILE)
    checked = set()
    for entry in catalog.allowed_permissions:
        if entry.resource_app_id in served:
            assert served[entry.resource_app_id].get(entry.value) == entry.id, (entry.resource_app_id, entry.value)
            checked.add(entry.resource_app_id)
    asked = {
        r.resource_app_id for p in catalog for r in (*p.permissions, *(r for a in p.add_ons for r in a.permissions))
    }
    assert checked == asked


def test_the_catalog_shows_each_profiles_high_impact_reason_and_each_roles_impact() -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]  # no stubs in the venv

    from shared.entrypoints.openapi import openapi_document

    catalog = load_catalog(CATALOG_FILE)
    body = catalog.to_json()
    by_id = {i["id"]: i for i in body["integrations"]}
    assert by_id["defender-endpoint"]["highImpact"] is None
    assert {r["impact"] for r in by_id["defender-endpoint"]["permissions"][0]["appRoles"]} == {"read"}
    live = by_id["defender-endpoint-live-response"]
    assert live["highImpact"]["reason"].startswith("Live response runs commands")
    (response,) = (r for r in live["permissions"][0]["appRoles"] if r["impact"] == "high")
    assert response["value"] == "Machine.LiveResponse" and response["id"] == "1629b959-c0af-42a1-92f0-f6162060bdf1"
    assert "commands" in response["reason"]
    schemas = openapi_document()["components"]["schemas"]
    schema = {**schemas["Catalog"], "$defs": schemas}
    refs = json.loads(json.dumps(schema).replace("#/components/schemas/", "#/$defs/"))
    Draft202012Validator(refs).validate(body)


VALID = {
    "KEY_VAULT_URL": "https://kv-example.vault.azure.net",
    "HOME_TENANT_ID": "5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10",
}


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"KEY_VAULT_URL": ""}, "KEY_VAULT_URL"),
        ({"KEY_VAULT_URL": "http://kv.vault.azure.net"}, "KEY_VAULT_URL"),
        ({"HOME_TENANT_ID": "contoso"}, "HOME_TENANT_ID"),
        ({"SECRET_LIFETIME_DAYS": "0"}, "SECRET_LIFETIME_DAYS"),
        ({"SECRET_LIFETIME_DAYS": "800"}, "SECRET_LIFETIME_DAYS"),
        ({"NAME_PREFIX": "Has Spaces"}, "NAME_PREFIX"),
        ({"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "maybe"}, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE"),
        ({"PROVISIONER_CLIENT_ID": "not-a-guid"}, "PROVISIONER_CLIENT_ID"),
        ({"AzureWebJobsStorage__accountName": "Not_Valid"}, "AzureWebJobsStorage__accountName"),
    ],
)
def test_a_bad_setting_names_its_variable(overrides: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(VALID | overrides)
    assert raised.value.variable == variable


def test_defaults_and_derived_values() -> None:
    settings = load_settings(VALID | {"AzureWebJobsStorage__accountName": "stonboarding01"})
    assert settings.secret_lifetime_days == 180 and settings.rotation_window_days == 30
    assert settings.graph_scope == "https://graph.microsoft.com/.default" and not settings.is_local
    assert settings.storage_blob_uri == "https://stonboarding01.blob.core.windows.net"
    assert settings.provisioner_client_id is None


# --- add-ons: each one reviewed like a profile ---


EXCHANGE_ADMIN = {"templateId": "29232cdf-9323-42fd-ade2-1d097af3e4de", "displayName": "Exchange Administrator"}


def add_on(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "live", "displayName": "Live response", "permissions": [
        resource(DEFENDER, "Machine.LiveResponse")], "highImpact": HIGH_IMPACT}  # fmt: skip
    base.update(overrides)
    return base


@pytest.mark.parametrize(
    ("add_ons", "message"),
    [
        ([add_on(highImpact=None)], "Machine.LiveResponse is high impact"),
        ([add_on(permissions=[resource(GRAPH, "User.Read.All")])], "asks for no high-impact role"),
        ([add_on(permissions=[resource(DEFENDER, "Machine.Isolate")])], "not in allowedPermissions"),
        ([add_on(), add_on()], "appears twice"),
        ([add_on(id="Live")], "lowercase letters"),
        ([add_on(credentialTypes=["federated"])], "within the connection's"),
        ([add_on(remainingStep="run this as {password}")], "placeholders"),
        ([add_on(surprise=True)], "unknown fields ['surprise']"),
        ([add_on(id=f"add-on-{n:02d}-{'x' * 20}") for n in range(9)], "one Key Vault tag"),
        ([add_on(remainingStepDoneWith=[EXCHANGE_ADMIN])], "only with a remainingStep"),
        ([add_on(remainingStep="x", remainingStepDoneWith=[EXCHANGE_ADMIN, EXCHANGE_ADMIN])], "appears twice"),
        ([add_on(remainingStep="x", remainingStepDoneWith=[EXCHANGE_ADMIN | {"templateId": "admin"}])], "GUID"),
        ([add_on(remainingStep="x", remainingStepDoneWith=[EXCHANGE_ADMIN | {"displayName": ""}])], "displayName"),
        ([add_on(remainingStep="x", remainingStepDoneWith=[EXCHANGE_ADMIN | {"scope": "/"}])], "unknown fields"),
    ],
)
def test_an_add_on_is_reviewed_like_a_profile(tmp_path: Path, add_ons: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(catalog_with(tmp_path, [profile(addOns=add_ons)], [USER_READ_ALL, LIVE_RESPONSE]))


def test_an_add_on_merges_into_the_same_app_and_narrows_the_credential_types(tmp_path: Path) -> None:
    catalog = load_catalog(
        catalog_with(
            tmp_path,
            [profile(credentialTypes=["secret", "certificate"],
                     addOns=[add_on(credentialTypes=["certificate"], remainingStep="grant {appId} in {tenantId}")])],
            [USER_READ_ALL, LIVE_RESPONSE],
        )
    )  # fmt: skip
    connection = catalog.require("example")
    assert connection.high_impact_reason is None and connection.all_roles() == {(GRAPH, "User.Read.All")}
    with_live = connection.with_add_ons(["live"])
    assert with_live.all_roles() == {(GRAPH, "User.Read.All"), (DEFENDER, "Machine.LiveResponse")}
    assert with_live.credential_types == (CredentialType.CERTIFICATE,)
    assert with_live.default_credential_type is CredentialType.CERTIFICATE
    assert (
        with_live.source_of(DEFENDER, "Machine.LiveResponse") == "live"
        and with_live.source_of(GRAPH, "User.Read.All") is None
    )
    assert with_live.with_add_ons([]).all_roles() == connection.all_roles(), "removing it returns to the base"
    listed = catalog.to_json()["integrations"][0]["addOns"][0]
    assert listed["highImpact"] == HIGH_IMPACT and listed["credentialTypes"] == ["certificate"]


@pytest.mark.parametrize(
    ("superseded_by", "message"),
    [
        ({"integration": "nowhere"}, "not a current integration"),
        ({"integration": "example", "addOns": ["absent"]}, "offers no add-on absent"),
        ({"integration": "example"}, "does not grant ['Machine.LiveResponse']"),
    ],
)
def test_a_superseded_profile_names_a_successor_that_grants_all_it_grants(
    tmp_path: Path, superseded_by: dict[str, Any], message: str
) -> None:
    legacy = profile(id="legacy", permissions=[resource(DEFENDER, "Machine.LiveResponse")], highImpact=HIGH_IMPACT,
                     supersededBy=superseded_by)  # fmt: skip
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(catalog_with(tmp_path, [profile(addOns=[add_on()]), legacy], [USER_READ_ALL, LIVE_RESPONSE]))
    fine = {**legacy, "supersededBy": {"integration": "example", "addOns": ["live"]}}
    assert load_catalog(catalog_with(tmp_path, [profile(addOns=[add_on()]), fine], [USER_READ_ALL, LIVE_RESPONSE]))
