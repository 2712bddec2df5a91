"""One setting names the cloud: every endpoint, audience and suffix follows it, a mix of clouds is refused, and the
catalog offers only what exists there."""

from __future__ import annotations

import pytest

from shared.domain.catalog import load_catalog
from shared.domain.clouds import CLOUDS
from shared.domain.errors import NotInThisCloud
from shared.settings import SettingsError, load_settings

TENANT = "5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10"
VAULT = {
    "AzurePublicCloud": "https://kv1.vault.azure.net",
    "AzureUSGovernment": "https://kv1.vault.usgovcloudapi.net",
    "AzureUSGovernmentDoD": "https://kv1.vault.usgovcloudapi.net",
    "AzureChinaCloud": "https://kv1.vault.azure.cn",
}
# What each cloud must resolve to, written out here (not read from the table under test): Microsoft's pages cited
# in shared/domain/clouds.py.
EXPECTED = {
    "AzurePublicCloud": (
        "https://login.microsoftonline.com", "https://graph.microsoft.com/v1.0", "https://graph.microsoft.com/.default",
        "https://management.azure.com/.default", "https://api.loganalytics.io", "api://AzureADTokenExchange/.default",
        "https://acct.blob.core.windows.net",
    ),
    "AzureUSGovernment": (
        "https://login.microsoftonline.us", "https://graph.microsoft.us/v1.0", "https://graph.microsoft.us/.default",
        "https://management.usgovcloudapi.net/.default", "https://api.loganalytics.us",
        "api://AzureADTokenExchangeUSGov/.default", "https://acct.blob.core.usgovcloudapi.net",
    ),
    "AzureUSGovernmentDoD": (
        "https://login.microsoftonline.us", "https://dod-graph.microsoft.us/v1.0",
        "https://dod-graph.microsoft.us/.default", "https://management.usgovcloudapi.net/.default",
        "https://api.loganalytics.us", "api://AzureADTokenExchangeUSGov/.default",
        "https://acct.blob.core.usgovcloudapi.net",
    ),
    "AzureChinaCloud": (
        "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn/v1.0",
        "https://microsoftgraph.chinacloudapi.cn/.default", "https://management.chinacloudapi.cn/.default",
        "https://api.loganalytics.azure.cn", "api://AzureADTokenExchangeChina/.default",
        "https://acct.blob.core.chinacloudapi.cn",
    ),
}  # fmt: skip
IN_AZURE = {"WEBSITE_SITE_NAME": "func-onboarding", "HOME_TENANT_ID": TENANT}


@pytest.mark.parametrize("cloud", sorted(EXPECTED))
def test_every_endpoint_and_audience_follows_the_cloud(cloud: str) -> None:
    settings = load_settings(
        IN_AZURE | {"AZURE_CLOUD": cloud, "KEY_VAULT_URL": VAULT[cloud], "AzureWebJobsStorage__accountName": "acct"}
    )
    derived = (
        settings.authority_host, settings.graph_base_url, settings.graph_scope, settings.resource_manager_scope,
        settings.log_analytics_audience, settings.cloud.federation_scope, settings.storage_blob_uri,
    )  # fmt: skip
    assert derived == EXPECTED[cloud]
    assert settings.storage_queue_uri == EXPECTED[cloud][-1].replace(".blob.", ".queue.")


def test_the_public_cloud_is_the_default_and_an_unknown_cloud_is_refused() -> None:
    assert load_settings(IN_AZURE | {"KEY_VAULT_URL": VAULT["AzurePublicCloud"]}).cloud.name == "AzurePublicCloud"
    with pytest.raises(SettingsError) as raised:
        load_settings(IN_AZURE | {"AZURE_CLOUD": "AzureGermanCloud", "KEY_VAULT_URL": VAULT["AzurePublicCloud"]})
    assert raised.value.variable == "AZURE_CLOUD" and "AzureUSGovernment" in str(raised.value)


@pytest.mark.parametrize("in_azure", [True, False], ids=["in-azure", "local"])
@pytest.mark.parametrize(
    ("cloud", "overrides", "variable"),
    [
        ("AzureUSGovernment", {"GRAPH_BASE_URL": "https://graph.microsoft.com/v1.0"}, "GRAPH_BASE_URL"),
        ("AzureUSGovernment", {"GRAPH_BASE_URL": "https://dod-graph.microsoft.us/v1.0"}, "GRAPH_BASE_URL"),
        ("AzurePublicCloud", {"AUTHORITY_HOST": "https://login.microsoftonline.us"}, "AUTHORITY_HOST"),
        ("AzureChinaCloud", {"RESOURCE_MANAGER_URL": "https://management.azure.com"}, "RESOURCE_MANAGER_URL"),
        ("AzureUSGovernmentDoD", {"LOG_ANALYTICS_URL": "https://api.loganalytics.azure.cn"}, "LOG_ANALYTICS_URL"),
        ("AzureUSGovernment", {"KEY_VAULT_URL": "https://kv1.vault.azure.net"}, "KEY_VAULT_URL"),
        (
            "AzureChinaCloud",
            {"EVENT_GRID_TOPIC_ENDPOINT": "https://topic.chinaeast2-1.eventgrid.azure.net/api/events"},
            "EVENT_GRID_TOPIC_ENDPOINT",
        ),
        (
            "AzureUSGovernment",
            {"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net"},
            "AzureWebJobsStorage__blobServiceUri",
        ),
        (
            "AzureChinaCloud",
            {"CONNECTOR_TRUST_ISSUER": f"https://login.microsoftonline.com/{TENANT}/v2.0"},
            "CONNECTOR_TRUST_ISSUER",
        ),
        (
            "AzureUSGovernment",
            {
                "AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
            },
            "AzureWebJobsStorage",
        ),
        ("AzureChinaCloud", {"AzureWebJobsStorage": "AccountName=acct;AccountKey=a2V5"}, "AzureWebJobsStorage"),
    ],
)
def test_a_mix_of_clouds_is_refused_locally_and_in_azure(
    cloud: str, overrides: dict[str, str], variable: str, in_azure: bool
) -> None:
    """A US Government authority with the public Graph (and every other pairing) would send one cloud's tokens to
    another, or hand out a consent URL the customer's cloud cannot answer."""
    env = {"AZURE_CLOUD": cloud, "HOME_TENANT_ID": TENANT, "KEY_VAULT_URL": VAULT[cloud]} | overrides
    if in_azure:
        env["WEBSITE_SITE_NAME"] = "func-onboarding"
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert raised.value.variable == variable


def test_locally_the_endpoints_are_the_stand_ins_and_the_audiences_still_the_clouds() -> None:
    local = "https://127.0.0.1:8443"
    settings = load_settings(
        {
            "AZURE_CLOUD": "AzureChinaCloud",
            "HOME_TENANT_ID": TENANT,
            "KEY_VAULT_URL": local,
            "GRAPH_BASE_URL": f"{local}/v1.0",
            "AUTHORITY_HOST": local,
            "RESOURCE_MANAGER_URL": local,
            "LOG_ANALYTICS_URL": local,
        }
    )
    assert settings.is_local and settings.graph_base_url == f"{local}/v1.0"
    assert settings.graph_scope == "https://microsoftgraph.chinacloudapi.cn/.default"
    assert settings.log_analytics_audience == "https://api.loganalytics.azure.cn"


def test_in_azure_government_its_own_event_grid_and_china_s_second_login_host_are_accepted() -> None:
    load_settings(
        IN_AZURE
        | {
            "AZURE_CLOUD": "AzureUSGovernment",
            "KEY_VAULT_URL": VAULT["AzureUSGovernment"],
            "EVENT_GRID_TOPIC_ENDPOINT": "https://topic.usgovvirginia-1.eventgrid.azure.us/api/events",
        }
    )
    china = load_settings(
        IN_AZURE
        | {
            "AZURE_CLOUD": "AzureChinaCloud",
            "KEY_VAULT_URL": VAULT["AzureChinaCloud"],
            "AUTHORITY_HOST": "https://login.partner.microsoftonline.cn",
        }
    )
    assert china.authority_host == "https://login.partner.microsoftonline.cn"


def test_the_catalog_and_the_cloud_table_name_the_same_graph_and_log_analytics() -> None:
    for cloud in CLOUDS.values():
        catalog = load_catalog(cloud=cloud.name)
        scopes = {p.resource_name: p.token_scope for profile in catalog for p in profile.permissions}
        assert scopes["Microsoft Graph"] == cloud.graph_scope
        if "Log Analytics API" in scopes:
            assert scopes["Log Analytics API"] == f"{cloud.log_analytics}/.default"
        assert all(scope for scope in scopes.values()), f"a permission without a scope in {cloud.name}"


def test_each_cloud_offers_only_the_integrations_and_add_ons_whose_apis_exist_there() -> None:
    def offered(cloud: str) -> dict[str, set[str]]:
        catalog = load_catalog(cloud=cloud)
        return {p.id: {a.id for a in p.add_ons} for p in catalog}

    public = offered("AzurePublicCloud")
    assert "exchange" in public["m365-defender"] and "sentinel" in public
    assert offered("AzureUSGovernment") == offered("AzureUSGovernmentDoD") == public
    assert offered("AzureChinaCloud") == {"m365-defender": {"exchange", "revoke-sessions"}}


def test_asking_for_what_the_cloud_lacks_says_so() -> None:
    china = load_catalog(cloud="AzureChinaCloud")
    with pytest.raises(NotInThisCloud) as raised:
        china.require("sentinel")
    assert "AzureChinaCloud" in raised.value.detail and raised.value.status == 400
    with pytest.raises(NotInThisCloud) as add_on:
        china.refuse_elsewhere(china.require("m365-defender"), ["exchange", "defender-xdr"])
    assert add_on.value.detail.startswith("addOns: defender-xdr of m365-defender")
    china.refuse_elsewhere(china.require("m365-defender"), ["exchange", "no-such-add-on"])


def test_an_add_on_a_registration_records_but_the_cloud_lacks_is_dropped_never_granted() -> None:
    """A Client ID's `add-ons` tag naming one (the catalog narrowed it, or the tag was written by hand) is read as
    an add-on that left the catalog: its roles are not granted, and a rerun revokes them."""
    profile = load_catalog(cloud="AzureChinaCloud").require("m365-defender")
    chosen = profile.with_add_ons(["defender-xdr", "exchange", "live-response"])
    assert chosen.chosen == ("exchange",)
    assert {p.resource_name for p in chosen.permissions} == {"Microsoft Graph", "Office 365 Exchange Online"}
    assert all(p.token_scope for p in chosen.permissions)


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"AzureWebJobsStorage__blobServiceUri": "https://evil.example"}, "AzureWebJobsStorage__blobServiceUri"),
        ({"AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.usgovcloudapi.net.evil.example"},
         "AzureWebJobsStorage__queueServiceUri"),
        ({"AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net."}, "AzureWebJobsStorage__blobServiceUri"),
        ({"CONNECTOR_TRUST_ISSUER": "https://evil.example/" + TENANT + "/v2.0"}, "CONNECTOR_TRUST_ISSUER"),
        ({"CONNECTOR_TRUST_ISSUER": "https://login.microsoftonline.us/" + TENANT + "/v2.0/evil"}, "CONNECTOR_TRUST_ISSUER"),
    ],
)  # fmt: skip
def test_in_azure_storage_and_the_trusted_issuer_are_the_clouds_own(overrides: dict[str, str], variable: str) -> None:
    """The locks, the due index and the outbox hold what the app writes; the issuer is what connector apps trust."""
    env = IN_AZURE | {"AZURE_CLOUD": "AzureUSGovernment", "KEY_VAULT_URL": VAULT["AzureUSGovernment"]} | overrides
    with pytest.raises(SettingsError) as raised:
        load_settings(env)
    assert raised.value.variable == variable
    good = {
        "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.usgovcloudapi.net",
        "AzureWebJobsStorage__queueServiceUri": "https://acct.queue.core.usgovcloudapi.net",
        "CONNECTOR_TRUST_ISSUER": f"https://login.microsoftonline.us/{TENANT}/v2.0",
    }
    load_settings(IN_AZURE | {"AZURE_CLOUD": "AzureUSGovernment", "KEY_VAULT_URL": VAULT["AzureUSGovernment"]} | good)
