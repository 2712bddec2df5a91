"""In Azure (the platform sets WEBSITE_SITE_NAME) only Microsoft's cloud endpoints are accepted, and the
local stand-in's switches are refused at start, each naming its variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import SettingsError, load_settings

LOCAL = {
    "KEY_VAULT_URL": "https://127.0.0.1:8443",
    "HOME_TENANT_ID": "5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10",
    "GRAPH_BASE_URL": "https://127.0.0.1:8443/v1.0",
    "AUTHORITY_HOST": "https://127.0.0.1:8443",
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false",
}
AZURE = {
    "WEBSITE_SITE_NAME": "func-onboarding-abc123",
    "KEY_VAULT_URL": "https://kv-onboarding-abc123.vault.azure.net/",
    "HOME_TENANT_ID": "5f1c5a7e-3c1d-4b8e-9a51-2d1b0c9e7a10",
}


def refused(overrides: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as raised:
        load_settings(AZURE | overrides)
    return raised.value.variable


def test_the_deployed_settings_are_accepted_in_azure() -> None:
    settings = load_settings(AZURE)  # what infra/app/function.bicep sets: the defaults are the public cloud
    assert settings.authority_host == "https://login.microsoftonline.com"
    assert settings.graph_base_url == "https://graph.microsoft.com/v1.0"
    assert settings.tls_ca_bundle is None and settings.key_vault_verify_challenge_resource


@pytest.mark.parametrize(
    ("cloud", "authority", "graph", "vault"),
    [
        ("", "https://login.microsoftonline.com/", "https://graph.microsoft.com/v1.0", "https://kv1.vault.azure.net"),
        (
            "AzureUSGovernment",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us/v1.0",
            "https://kv1.vault.usgovcloudapi.net",
        ),
        (
            "AzureUSGovernmentDoD",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us/v1.0",
            "https://kv1.vault.usgovcloudapi.net",
        ),
        (
            "AzureChinaCloud",
            "https://login.chinacloudapi.cn",
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
            "https://kv1.vault.azure.cn",
        ),
        (
            "AzureChinaCloud",
            "https://login.partner.microsoftonline.cn",
            "https://microsoftgraph.chinacloudapi.cn/v1.0",
            "https://kv1.vault.azure.cn",
        ),
        ("", "https://LOGIN.microsoftonline.com", "https://Graph.Microsoft.com/v1.0", "https://KV1.vault.azure.net"),
    ],
)
def test_every_microsoft_cloud_is_accepted_in_azure(cloud: str, authority: str, graph: str, vault: str) -> None:
    load_settings(
        AZURE | {"AZURE_CLOUD": cloud, "AUTHORITY_HOST": authority, "GRAPH_BASE_URL": graph, "KEY_VAULT_URL": vault}
    )


@pytest.mark.parametrize(
    "authority",
    [
        "https://login.microsoftonline.com.evil.example",  # new secrets would be proven, so sent, there
        "https://evil.example/login.microsoftonline.com",
        "https://login.microsoftonline.com@evil.example",
        "https://evil.example#@login.microsoftonline.com",
        "https://login.microsoftonline.com:8443",
        "https://login.microsoftonline.com/evil-tenant",
        "https://login.microsoftonline.com?x=1",
        "https://xlogin.microsoftonline.com",
        "https://login.microsoftonline.de",  # Microsoft Cloud Germany, closed in 2021
        "https://127.0.0.1:8443",  # the local stand-in
        "https://localhost",
    ],
)
def test_an_authority_that_is_not_a_microsoft_cloud_is_refused_in_azure(authority: str) -> None:
    assert refused({"AUTHORITY_HOST": authority}) == "AUTHORITY_HOST"


@pytest.mark.parametrize(
    "graph",
    [
        "https://graph.microsoft.com.evil.example/v1.0",
        "https://graph.microsoft.com@evil.example/v1.0",
        "https://graph.microsoft.com:444/v1.0",
        "https://graph.windows.net",  # Azure AD Graph, retired: not Microsoft Graph
        "https://evil.example/graph.microsoft.com",
        "https://127.0.0.1:8443/v1.0",
    ],
)
def test_a_graph_endpoint_that_is_not_a_microsoft_cloud_is_refused_in_azure(graph: str) -> None:
    assert refused({"GRAPH_BASE_URL": graph}) == "GRAPH_BASE_URL"


@pytest.mark.parametrize(
    "vault",
    [
        "https://kv1.vault.azure.net.evil.example",
        "https://evil.example/kv1.vault.azure.net",
        "https://kv1.vault.azure.net@evil.example",
        "https://kv1.vault.azure.net:8443",
        "https://vault.azure.net",
        "https://a.b.vault.azure.net",
        "https://kv1.vault.azure.net/secrets",
        "https://kv1.managedhsm.azure.net",
        "https://127.0.0.1:8443",
    ],
)
def test_a_vault_that_is_not_in_a_microsoft_cloud_is_refused_in_azure(vault: str) -> None:
    assert refused({"KEY_VAULT_URL": vault}) == "KEY_VAULT_URL"


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        ({"TLS_CA_BUNDLE": "/etc/ssl/certs/ca-certificates.crt"}, "TLS_CA_BUNDLE"),  # even a file that exists
        ({"TLS_CA_BUNDLE": "/no/such/file.pem"}, "TLS_CA_BUNDLE"),
        ({"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false"}, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE"),
        ({"KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "0"}, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE"),
    ],
)
def test_the_local_stand_ins_switches_are_refused_in_azure(overrides: dict[str, str], variable: str) -> None:
    assert refused(overrides) == variable
    with pytest.raises(SettingsError, match="local"):
        load_settings(AZURE | overrides)


def test_the_refusal_names_the_variable_and_the_accepted_endpoints() -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings(AZURE | {"AUTHORITY_HOST": "https://login.microsoftonline.com.evil.example"})
    message = str(raised.value)
    assert message.startswith("setting AUTHORITY_HOST:") and "must be https://login.microsoftonline.com" in message


def test_the_local_stand_in_still_runs_without_website_site_name(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = load_settings(LOCAL | {"TLS_CA_BUNDLE": str(bundle)})
    assert settings.is_local and settings.tls_ca_bundle == str(bundle)
    assert not settings.key_vault_verify_challenge_resource
    with pytest.raises(SettingsError):  # the same settings in Azure: refused
        load_settings(LOCAL | {"TLS_CA_BUNDLE": str(bundle), "WEBSITE_SITE_NAME": "func-x"})


@pytest.mark.parametrize(
    ("name", "url"),
    [
        ("RESOURCE_MANAGER_URL", "https://management.example.com"),
        ("RESOURCE_MANAGER_URL", "https://127.0.0.1:8443"),
        ("RESOURCE_MANAGER_URL", "https://management.azure.com/subscriptions"),
        ("LOG_ANALYTICS_URL", "https://api.loganalytics.io.example.com"),
        ("LOG_ANALYTICS_URL", "http://api.loganalytics.io"),
    ],
)
def test_resource_manager_and_log_analytics_are_microsofts_own_hosts_in_azure(name: str, url: str) -> None:
    """The app's own ARM token and a new app's credential go to these hosts: only Microsoft's, in Azure."""
    assert refused({name: url}) == name


def test_each_cloud_has_its_resource_manager_and_log_analytics_hosts_and_audiences() -> None:
    settings = load_settings(
        AZURE
        | {
            "AZURE_CLOUD": "AzureUSGovernment",
            "KEY_VAULT_URL": "https://kv1.vault.usgovcloudapi.net",
            "RESOURCE_MANAGER_URL": "https://management.usgovcloudapi.net",
            "LOG_ANALYTICS_URL": "https://api.loganalytics.us",
        }
    )
    assert settings.resource_manager_scope == "https://management.usgovcloudapi.net/.default"
    assert settings.log_analytics_audience == "https://api.loganalytics.us"
    assert load_settings(AZURE).resource_manager_scope == "https://management.azure.com/.default"
