"""Microsoft's clouds this service deploys to: every endpoint, token audience and DNS suffix, from one table.

`AZURE_CLOUD` names one row; settings, token scopes, the consent URL and the federated credential's
audience all derive from it, so no code names a public-cloud host of its own. Resource APIs an
integration calls (Defender for Endpoint, Exchange Online, ...) have their per-cloud identifiers in the
catalog's `resources` table (shared/domain/catalog.json), beside the permissions they carry.

Sources, for every value below:
- Entra authorities and Microsoft Graph per national cloud: https://learn.microsoft.com/graph/deployments
  ("Microsoft Graph and Graph Explorer service root endpoints", and the Microsoft Entra ID endpoints beside
  them; a GCC tenant keeps the worldwide endpoints) and
  https://learn.microsoft.com/entra/identity-platform/authentication-national-cloud (China's
  login.partner.microsoftonline.cn; azure-identity's AzureAuthorityHosts names login.chinacloudapi.cn, the
  same cloud's other host). msgraph-core's `NationalClouds` enum names the same four Graph roots.
- Resource Manager's and Log Analytics' endpoints per cloud: Azure CLI's cloud table
  (azure-cli-core's cloud.py) and https://learn.microsoft.com/azure/azure-monitor/logs/api/access-api.
- Key Vault's DNS suffixes: https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates
  ("DNS suffixes for object identifiers").
- Storage in Azure Government and Azure China:
  https://learn.microsoft.com/azure/azure-government/compare-azure-government-global-azure ("Guidance for
  developers", endpoint mapping) and Azure CLI's cloud table.
- Event Grid topics: the private DNS zones of https://learn.microsoft.com/azure/private-link/private-endpoint-dns
  (eventgrid.azure.net; eventgrid.azure.us; eventgrid.azure.cn).
- The federated credential's audience per cloud:
  https://learn.microsoft.com/entra/workload-id/workload-identity-federation-config-app-trust-managed-identity
  ("must be one of": api://AzureADTokenExchange; Fairfax api://AzureADTokenExchangeUSGov; Mooncake
  api://AzureADTokenExchangeChina).
- Storage's token audience is the SDK's default, https://storage.azure.com, in every cloud (go-azure-sdk's China
  environment names the same resource identifier: hashicorp/go-azure-sdk, sdk/environments).
- azd's and Bicep's names of the clouds (`environment().name`):
  https://learn.microsoft.com/azure/developer/azure-developer-cli/sovereign-clouds and
  https://learn.microsoft.com/azure/azure-resource-manager/bicep/bicep-functions-deployment#environment.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Cloud:
    """One of Microsoft's clouds, as this service meets it. URLs are https://{host}, without a trailing slash."""

    name: str  # the AZURE_CLOUD value
    description: str
    arm_environment: str  # Bicep's environment().name and azd's cloud.name
    authority: str  # Entra's token endpoint host: where secrets are proven and admins consent
    authority_aliases: tuple[str, ...]  # other hosts of the same Entra cloud (its tokens' issuer may name one)
    graph: str  # Microsoft Graph's service root (and its token audience)
    resource_manager: str  # Azure Resource Manager (and its token audience)
    log_analytics: str  # the Log Analytics query API (and its token audience)
    key_vault_suffix: str  # a vault is https://{name}.{suffix}
    storage_suffix: str  # a storage account's endpoints are https://{account}.{service}.{suffix}
    event_grid_suffix: str  # a custom topic is https://{topic}.{region}-1.{suffix}/api/events
    federation_audience: str  # what a federated identity credential's audiences hold

    @property
    def graph_scope(self) -> str:
        return f"{self.graph}/.default"

    @property
    def resource_manager_scope(self) -> str:
        return f"{self.resource_manager}/.default"

    @property
    def federation_scope(self) -> str:
        return f"{self.federation_audience}/.default"

    def hosts(self) -> dict[str, tuple[str, ...]]:
        """This cloud's endpoint hosts, by the setting that may point elsewhere (locally, at the stand-in)."""
        return {
            "AUTHORITY_HOST": (_host(self.authority), *self.authority_aliases),
            "GRAPH_BASE_URL": (_host(self.graph),),
            "RESOURCE_MANAGER_URL": (_host(self.resource_manager),),
            "LOG_ANALYTICS_URL": (_host(self.log_analytics),),
        }


PUBLIC = Cloud(
    name="AzurePublicCloud",
    description="Azure and Microsoft 365 commercial (and GCC, which signs in and calls Graph here)",
    arm_environment="AzureCloud",
    authority="https://login.microsoftonline.com",
    authority_aliases=(),
    graph="https://graph.microsoft.com",
    resource_manager="https://management.azure.com",
    log_analytics="https://api.loganalytics.io",
    key_vault_suffix="vault.azure.net",
    storage_suffix="core.windows.net",
    event_grid_suffix="eventgrid.azure.net",
    federation_audience="api://AzureADTokenExchange",
)
US_GOVERNMENT = Cloud(
    name="AzureUSGovernment",
    description="Azure Government with Microsoft 365 GCC High (Microsoft Graph for US Government L4)",
    arm_environment="AzureUSGovernment",
    authority="https://login.microsoftonline.us",
    authority_aliases=(),
    graph="https://graph.microsoft.us",
    resource_manager="https://management.usgovcloudapi.net",
    log_analytics="https://api.loganalytics.us",
    key_vault_suffix="vault.usgovcloudapi.net",
    storage_suffix="core.usgovcloudapi.net",
    event_grid_suffix="eventgrid.azure.us",
    federation_audience="api://AzureADTokenExchangeUSGov",
)
# The same Azure Government cloud; Microsoft 365 DoD tenants' Graph is its own deployment (US Government L5).
US_GOVERNMENT_DOD = Cloud(
    name="AzureUSGovernmentDoD",
    description="Azure Government with Microsoft 365 DoD (Microsoft Graph for US Government L5)",
    arm_environment="AzureUSGovernment",
    authority=US_GOVERNMENT.authority,
    authority_aliases=(),
    graph="https://dod-graph.microsoft.us",
    resource_manager=US_GOVERNMENT.resource_manager,
    log_analytics=US_GOVERNMENT.log_analytics,
    key_vault_suffix=US_GOVERNMENT.key_vault_suffix,
    storage_suffix=US_GOVERNMENT.storage_suffix,
    event_grid_suffix=US_GOVERNMENT.event_grid_suffix,
    federation_audience=US_GOVERNMENT.federation_audience,
)
CHINA = Cloud(
    name="AzureChinaCloud",
    description="Azure and Microsoft 365 operated by 21Vianet",
    arm_environment="AzureChinaCloud",
    authority="https://login.chinacloudapi.cn",
    authority_aliases=("login.partner.microsoftonline.cn",),
    graph="https://microsoftgraph.chinacloudapi.cn",
    resource_manager="https://management.chinacloudapi.cn",
    log_analytics="https://api.loganalytics.azure.cn",
    key_vault_suffix="vault.azure.cn",
    storage_suffix="core.chinacloudapi.cn",
    event_grid_suffix="eventgrid.azure.cn",
    federation_audience="api://AzureADTokenExchangeChina",
)

CLOUDS: dict[str, Cloud] = {cloud.name: cloud for cloud in (PUBLIC, US_GOVERNMENT, US_GOVERNMENT_DOD, CHINA)}


def cloud_named(name: str) -> Cloud | None:
    return CLOUDS.get(name)


def clouds_of_host(host: str) -> set[str]:
    """The clouds whose endpoint (or DNS suffix) `host` is: empty for a host no cloud names (the stand-in's)."""
    host = host.lower().rstrip(".")  # a fully qualified name's trailing dot names the same host
    found = set()
    for cloud in CLOUDS.values():
        suffixes = (cloud.key_vault_suffix, cloud.storage_suffix, cloud.event_grid_suffix)
        hosts = {h for named in cloud.hosts().values() for h in named}
        if host in hosts or any(host.endswith(f".{suffix}") for suffix in suffixes):
            found.add(cloud.name)
    return found


def _host(url: str) -> str:
    return urlsplit(url).netloc
