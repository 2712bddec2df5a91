"""The cloud the stand-in poses as (`--cloud`): its token issuers, each service's accepted audiences, the token
exchange audience, and the resource service principals a tenant of that cloud holds.

Written from Microsoft's pages, not from the product's table (shared/domain/clouds.py): a witness that shared
the product's values would agree with it by construction. FIDELITY.md, rows C1-C6, gives each source; what no
page states is marked unknown there, and posed so that the product cannot depend on it (a resource API whose
application ID URI a cloud's docs do not give is named by its app id only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Posture:
    name: str
    # v1.0 tokens' `iss` is {v1_issuer}/{tid}/, v2.0 tokens' {v2_issuer}/{tid}/v2.0 (C1).
    v1_issuer: str
    v2_issuer: str
    login_hosts: tuple[str, ...]  # where its token endpoint answers: a client assertion's `aud` may name any (C1)
    federation_audience: str  # the managed identity's token for a federated credential (C2)
    graph: frozenset[str]  # the audiences this cloud's Graph accepts (C3)
    vault: str  # Key Vault's resource, as its challenge names it (C4)
    vault_app_id: str
    resource_manager: frozenset[str]  # C5
    log_analytics: str  # C5
    # Seed resource app -> its servicePrincipalNames in this cloud besides its app id (C6). None: as seeded (the
    # public cloud's); an empty tuple: known by its app id only; an app left out: not in this cloud's tenants.
    resource_names: dict[str, tuple[str, ...]] | None = field(default=None)
    app_ids: dict[str, str] = field(default_factory=dict)  # seed resource app -> its app id here, where it differs

    def v1_issuer_of(self, tenant_id: str) -> str:
        return f"{self.v1_issuer}/{tenant_id}/"

    def v2_issuer_of(self, tenant_id: str) -> str:
        return f"{self.v2_issuer}/{tenant_id}/v2.0"

    @property
    def cloud_instance_name(self) -> str:
        """openid-configuration's cloud_instance_name: the authority host without its `login.`."""
        return self.v2_issuer.removeprefix("https://").removeprefix("login.")


GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
ARM_APP_ID = "797f4846-ba00-4fd7-ba43-dac1f8f63013"
LOG_ANALYTICS_APP_ID = "ca7f3f0b-7d91-482c-8e09-c5d840d0eac5"
DEFENDER_APP_ID = "fc780465-2017-40d4-a0c5-307022471b92"
THREAT_PROTECTION_APP_ID = "8ee8fdad-f234-4243-8f3b-15c294843740"
CLOUD_APPS_APP_ID = "05a65629-4c1b-48c1-a78b-804c4abdd4af"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"
EVENT_GRID_APP_ID = "4962773b-9cdb-44cf-a8bf-237846a00ab7"
PUBLIC_VAULT_APP_ID = "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"
US_GOVERNMENT_VAULT_APP_ID = "7e7c393b-45d0-48b1-a35e-2905ddf8183c"  # C4


def _with_slash(*uris: str) -> frozenset[str]:
    """Resource URIs as tokens may carry them: with and without the trailing slash."""
    return frozenset({*uris, *(f"{u}/" for u in uris)})


PUBLIC = Posture(
    name="AzurePublicCloud",
    v1_issuer="https://sts.windows.net",
    v2_issuer="https://login.microsoftonline.com",
    login_hosts=("https://login.microsoftonline.com",),
    federation_audience="api://AzureADTokenExchange",
    graph=_with_slash("https://graph.microsoft.com") | {GRAPH_APP_ID},
    vault="https://vault.azure.net",
    vault_app_id=PUBLIC_VAULT_APP_ID,
    resource_manager=_with_slash("https://management.azure.com", "https://management.core.windows.net") | {ARM_APP_ID},
    log_analytics="https://api.loganalytics.io",
)


def _us_government(name: str, graph: str) -> Posture:
    return Posture(
        name=name,
        v1_issuer="https://sts.windows.net",
        v2_issuer="https://login.microsoftonline.us",
        login_hosts=("https://login.microsoftonline.us",),
        federation_audience="api://AzureADTokenExchangeUSGov",
        graph=_with_slash(graph) | {GRAPH_APP_ID},
        vault="https://vault.usgovcloudapi.net",
        vault_app_id=US_GOVERNMENT_VAULT_APP_ID,
        resource_manager=_with_slash(
            "https://management.usgovcloudapi.net", "https://management.core.usgovcloudapi.net"
        )
        | {ARM_APP_ID},
        log_analytics="https://api.loganalytics.us",
        # One Entra for GCC High and DoD: both Graph deployments are resources of its tenants (C6, unknown).
        resource_names={
            "graph": ("https://graph.microsoft.us", "https://dod-graph.microsoft.us"),
            "keyVault": ("https://vault.usgovcloudapi.net",),
            "azureServiceManagement": (
                "https://management.usgovcloudapi.net",
                "https://management.core.usgovcloudapi.net",
            ),
            "logAnalytics": ("https://api.loganalytics.us",),
            "defenderEndpoint": (),  # exists; its application ID URI here is unknown, so app id only
            "threatProtection": (),
            "cloudApps": (),
            "exchangeOnline": (),
            "eventGrid": ("https://eventgrid.azure.net",),  # unknown: the SDKs ask for this audience in every cloud
        },
        app_ids={"keyVault": US_GOVERNMENT_VAULT_APP_ID},
    )


US_GOVERNMENT = _us_government("AzureUSGovernment", "https://graph.microsoft.us")
US_GOVERNMENT_DOD = _us_government("AzureUSGovernmentDoD", "https://dod-graph.microsoft.us")
CHINA = Posture(
    name="AzureChinaCloud",
    v1_issuer="https://sts.chinacloudapi.cn",
    v2_issuer="https://login.partner.microsoftonline.cn",
    # Both hosts of the one Entra (MSAL's China metadata; azure-identity's AzureAuthorityHosts names the first).
    login_hosts=("https://login.chinacloudapi.cn", "https://login.partner.microsoftonline.cn"),
    federation_audience="api://AzureADTokenExchangeChina",
    graph=_with_slash("https://microsoftgraph.chinacloudapi.cn") | {GRAPH_APP_ID},
    vault="https://vault.azure.cn",
    vault_app_id=PUBLIC_VAULT_APP_ID,
    resource_manager=_with_slash("https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn")
    | {ARM_APP_ID},
    log_analytics="https://api.loganalytics.azure.cn",
    resource_names={
        "graph": ("https://microsoftgraph.chinacloudapi.cn",),
        "keyVault": ("https://vault.azure.cn",),
        "azureServiceManagement": ("https://management.chinacloudapi.cn", "https://management.core.chinacloudapi.cn"),
        "logAnalytics": ("https://api.loganalytics.azure.cn",),
        "exchangeOnline": (),
        "eventGrid": ("https://eventgrid.azure.net",),
    },
)
POSTURES = {p.name: p for p in (PUBLIC, US_GOVERNMENT, US_GOVERNMENT_DOD, CHINA)}


def posed_seed(seed: dict[str, Any], posture: Posture) -> dict[str, Any]:
    """`seed` as a tenant of `posture`'s cloud holds it: resource apps renamed (and re-identified) as there, and
    those the cloud lacks (absent from resource_names) left out of every tenant."""
    if posture.resource_names is None:
        return seed
    posed: dict[str, Any] = {}
    for key, app in seed["resourceApps"].items():
        if key not in posture.resource_names:
            continue
        app_id = posture.app_ids.get(key, app["appId"])
        posed[key] = {**app, "appId": app_id, "servicePrincipalNames": [*posture.resource_names[key], app_id]}

    def present(tenant: dict[str, Any]) -> dict[str, Any]:
        return {**tenant, "resourceApps": [k for k in tenant["resourceApps"] if k in posed]}

    return {
        **seed,
        "resourceApps": posed,
        "home_tenant": present(seed["home_tenant"]),
        "customer_tenants": [present(t) for t in seed.get("customer_tenants", [])],
    }
