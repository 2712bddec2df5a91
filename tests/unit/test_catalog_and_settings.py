"""The catalog is an allow-list validated at start, and settings fail with the variable's name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.catalog import CATALOG_FILE, CatalogError, load_catalog
from shared.settings import SettingsError, load_settings

GRAPH = "00000003-0000-0000-c000-000000000000"


def catalog_with(tmp_path: Path, integrations: list[dict[str, Any]]) -> Path:
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps({"integrations": integrations}))
    return path


def profile(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "example",
        "displayName": "Example",
        "description": "",
        "permissions": [
            {"resourceAppId": GRAPH, "resourceName": "Microsoft Graph",
             "tokenScope": "https://graph.microsoft.com/.default", "roles": ["User.Read.All"]}
        ],
    }  # fmt: skip
    base.update(overrides)
    return base


def test_the_shipped_catalog_is_valid() -> None:
    catalog = load_catalog(CATALOG_FILE)
    assert [p.id for p in catalog] == ["m365-defender", "defender-endpoint", "sentinel"]
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
        ([profile(permissions=[{**profile()["permissions"][0], "roles": ["Directory.ReadWrite.All"]}])], "escalate"),
        (
            [profile(permissions=[{**profile()["permissions"][0], "roles": ["AppRoleAssignment.ReadWrite.All"]}])],
            "escalate",
        ),
        ([profile(permissions=[{**profile()["permissions"][0], "tokenScope": "http://x/.default"}])], "tokenScope"),
        ([profile(permissions=[{**profile()["permissions"][0], "roles": ["A.B", "A.B"]}])], "duplicates"),
    ],
)
def test_an_invalid_catalog_is_refused(tmp_path: Path, integrations: list[dict[str, Any]], complaint: str) -> None:
    with pytest.raises(CatalogError, match=complaint):
        load_catalog(catalog_with(tmp_path, integrations))


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
