"""Typed settings from environment variables, validated once at start with messages naming the variable.

`SETTINGS` lists every variable the code reads; infra tests compare it with the app settings
the Bicep template deploys, so the two cannot drift apart.

`AZURE_CLOUD` names the cloud (shared/domain/clouds.py): every endpoint defaults to that cloud's and every token
audience is that cloud's. An endpoint of another cloud is refused anywhere. In Azure (the platform sets
WEBSITE_SITE_NAME, read-only, to the app's name:
https://learn.microsoft.com/azure/app-service/reference-app-settings) the endpoints must be exactly the
cloud's own and the local stand-in's switches are refused: a copied local setting would
otherwise send new secrets to another host to be proven, hand customers a consent URL there,
trust another CA, or skip Key Vault's challenge check. Local runs do not set it.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from urllib.parse import urlsplit

from shared.domain.clouds import CLOUDS, PUBLIC, Cloud, clouds_of_host
from shared.domain.registry import Registry

PREFIX_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,22}[a-z0-9]$")
# A vault's name (https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftkeyvault),
# and a custom topic's endpoint host: {topic}.{region}-1.{suffix}
# (https://learn.microsoft.com/azure/event-grid/post-to-custom-topic; topic names are 3-50 letters, digits, hyphens).
VAULT_NAME = r"[a-z](?:[a-z0-9]|-(?!-)){1,22}[a-z0-9]"
EVENT_GRID_TOPIC = r"[a-z0-9-]{3,50}\.[a-z0-9]+-1"


class SettingsError(ValueError):
    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"setting {variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    key_vault_url: str
    home_tenant_id: str
    managed_identity_client_id: str | None
    name_prefix: str
    secret_lifetime_days: int
    max_secret_lifetime_days: int
    certificate_validity_months: int
    graph_base_url: str
    authority_host: str
    tls_ca_bundle: str | None
    key_vault_verify_challenge_resource: bool
    verify_timeout_seconds: float
    replication_timeout_seconds: float
    orphan_grace_minutes: float
    lock_wait_seconds: float
    storage_connection_string: str | None  # local development (Azurite) only: it holds an account key
    storage_blob_uri: str | None  # identity-based connection, as Flex Consumption deploys it
    rotation_window_days: float
    rotation_grace_hours: float
    rotation_concurrency: int
    rotation_rate_per_second: float
    provisioner_client_id: str | None  # the multi-tenant app that reaches customer tenants (vendor-hosted mode)
    # The vendor backend's workload identity the connector apps trust (credentialType federated): the object id
    # of its managed identity (None: the federated type is off), and the issuer of its tokens.
    connector_trust_subject: str | None = None
    connector_trust_issuer: str | None = None
    # Vendor-hosted mode manages customers' tenants; the vendor's own is refused unless this says otherwise.
    allow_home_tenant: bool = False
    # Sentinel workspace access: Azure Resource Manager (role assignments) and the Log Analytics query API.
    resource_manager_url: str = "https://management.azure.com"
    log_analytics_url: str = "https://api.loganalytics.io"
    # The cloud every token audience, DNS suffix and default endpoint comes from (shared/domain/clouds.py). The
    # URLs above may point elsewhere only locally (the stand-in); audiences never follow them.
    cloud: Cloud = PUBLIC
    # Events to the vendor's backend (shared/usecases/events.py): the Event Grid topic (None: none are published),
    # and the queue endpoint of the Functions storage account, where the outbox lives.
    event_grid_topic_endpoint: str | None = None
    storage_queue_uri: str | None = None
    # The bounded sweep (shared/usecases/sweep_pass.py): what one timer invocation may spend, how often a full pass
    # over Key Vault's listings begins, and the bound within which every registration is reached (else an alert).
    sweep_invocation_seconds: float = 240
    sweep_pages_per_invocation: int = 0  # 0: bounded by time alone
    sweep_checkpoint_pages: int = 20
    sweep_full_pass_hours: float = 168
    sweep_reach_hours: float = 24

    @cached_property
    def registry(self) -> Registry:
        """This deployment's naming scheme and tag schema (its name prefix makes them its own)."""
        return Registry(self.name_prefix)

    @property
    def public_authority(self) -> str:
        """Where a person signs in (admin consent): the authority host, as configured."""
        return self.authority_host

    @property
    def graph_scope(self) -> str:
        """The Graph scope of this cloud (https://graph.microsoft.us/.default in US Government GCC High)."""
        return self.cloud.graph_scope

    @property
    def resource_manager_scope(self) -> str:
        """The token scope for Azure Resource Manager in this cloud."""
        return self.cloud.resource_manager_scope

    @property
    def log_analytics_audience(self) -> str:
        """The token audience the Log Analytics query API expects in this cloud."""
        return self.cloud.log_analytics

    @property
    def home_tenant_refused(self) -> bool:
        """Whether callers' registrations are kept out of the home tenant: this deployment onboards customers (a
        provisioner app is configured) and the vendor has not opted the home tenant in (ALLOW_HOME_TENANT)."""
        return self.provisioner_client_id is not None and not self.allow_home_tenant

    @property
    def is_local(self) -> bool:
        """True against the local stand-in: Entra instance discovery would go to the real cloud."""
        return urlsplit(self.authority_host).hostname in ("127.0.0.1", "localhost", "::1")


def _required(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise SettingsError(name, "is required")
    return value


def _guid(name: str, value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise SettingsError(name, f"must be a GUID, got {value!r}") from exc


def _https_url(name: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise SettingsError(name, f"must be an https URL, got {value!r}")
    return value.rstrip("/")


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise SettingsError(name, f"must be a number, got {raw!r}") from exc
    if not low <= value <= high:
        raise SettingsError(name, f"must be between {low:g} and {high:g}, got {raw}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise SettingsError(name, f"must be true or false, got {raw!r}")


def _optional(env: Mapping[str, str], name: str, check: Callable[[str, str], str]) -> str | None:
    raw = env.get(name, "").strip()
    return check(name, raw) if raw else None


def _ca_bundle(name: str, value: str) -> str:
    if not Path(value).is_file():
        raise SettingsError(name, f"names no readable file: {value!r}")
    return value


def _prefix(name: str, value: str) -> str:
    if not PREFIX_PATTERN.match(value):
        raise SettingsError(name, "must be 2-24 lowercase letters, digits or hyphens, starting with a letter")
    return value


# name -> (default shown to operators, one line of meaning); the single list of what the code reads.
SETTINGS: dict[str, tuple[str | None, str]] = {
    "KEY_VAULT_URL": (None, "vault that holds Client ID, Tenant ID and Client Secret"),
    "HOME_TENANT_ID": (None, "the vendor's tenant: where the managed identity and the vault live"),
    "MANAGED_IDENTITY_CLIENT_ID": ("", "client id of the user-assigned managed identity (empty: system-assigned)"),
    "NAME_PREFIX": ("tenant-onboarding", "prefix of app unique names and Key Vault secret names"),
    "SECRET_LIFETIME_DAYS": ("180", "lifetime of a new client secret, clamped to the tenant's policy"),
    "MAX_SECRET_LIFETIME_DAYS": ("730", "the longest lifetime a caller may ask for"),
    "CERTIFICATE_VALIDITY_MONTHS": ("12", "validity of a new client certificate, clamped to the tenant's policy"),
    "AZURE_CLOUD": (
        "AzurePublicCloud",
        "the cloud: AzurePublicCloud, AzureUSGovernment (GCC High), AzureUSGovernmentDoD or AzureChinaCloud; "
        "every endpoint, token audience and DNS suffix follows it",
    ),
    "GRAPH_BASE_URL": ("", "Microsoft Graph endpoint (empty: the cloud's, e.g. https://graph.microsoft.com/v1.0)"),
    "AUTHORITY_HOST": ("", "Entra ID authority (empty: the cloud's, e.g. https://login.microsoftonline.com)"),
    "TLS_CA_BUNDLE": ("", "extra CA bundle to trust (the local stand-in only)"),
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": ("true", "check the vault challenge's resource (false only locally)"),
    "VERIFY_TIMEOUT_SECONDS": ("60", "how long to wait for a new secret to work before answering 202"),
    "REPLICATION_TIMEOUT_SECONDS": ("60", "how long to wait for Entra replication before answering 202"),
    "ORPHAN_GRACE_MINUTES": ("30", "age after which a secret this service minted but never stored is removed"),
    "LOCK_WAIT_SECONDS": ("30", "how long a request waits for another operation on the same registration"),
    "AzureWebJobsStorage": ("", "storage connection string (local development; Azure uses the identity-based form)"),
    "AzureWebJobsStorage__blobServiceUri": ("", "blob endpoint of the Functions storage account (identity-based)"),
    "AzureWebJobsStorage__accountName": ("", "storage account name, when no blobServiceUri is set"),
    "ROTATION_SCHEDULE": ("0 */10 * * * *", "NCRONTAB schedule of the rotation sweep (read by the Functions host)"),
    "SWEEP_INVOCATION_SECONDS": (
        "240",
        "most a sweep invocation works before leaving the rest to the next (keep below host.json's functionTimeout)",
    ),
    "SWEEP_PAGES_PER_INVOCATION": ("0", "most Key Vault listing pages a sweep invocation reads (0: time alone)"),
    "SWEEP_CHECKPOINT_PAGES": (
        "20",
        "listing pages between two saves of the sweep's checkpoint (a killed invocation reads at most this many again)",
    ),
    "SWEEP_FULL_PASS_HOURS": ("168", "a full pass over Key Vault's listings begins this long after the last began"),
    "SWEEP_REACH_HOURS": (
        "24",
        "every registration is acted on within this of its due time, and a full pass ends within this of its "
        "interval; otherwise an alert",
    ),
    "ROTATION_WINDOW_DAYS": ("30", "rotate a secret this many days before it expires"),
    "ROTATION_GRACE_HOURS": (
        "48",
        "keep the previous secret this long after a rotation (versionless references refresh within 24 h)",
    ),
    "ROTATION_CONCURRENCY": ("8", "registrations rotated at once by a sweep"),
    "ROTATION_RATE_PER_SECOND": (
        "10",
        "most rotations a sweep starts a second (Graph's and Key Vault's write limits); 0: unpaced",
    ),
    "PROVISIONER_CLIENT_ID": ("", "client id of the multi-tenant provisioner app (empty: home tenant only)"),
    "CONNECTOR_TRUST_SUBJECT": (
        "",
        "object id of the vendor backend's managed identity the connector apps trust (empty: no federated type)",
    ),
    "CONNECTOR_TRUST_ISSUER": ("", "issuer of that identity's tokens (empty: this service's own identity's issuer)"),
    "ALLOW_HOME_TENANT": ("false", "vendor-hosted mode only: may callers also manage apps in the home tenant"),
    "RESOURCE_MANAGER_URL": ("", "Azure Resource Manager, for Sentinel workspace roles (empty: the cloud's)"),
    "LOG_ANALYTICS_URL": ("", "Log Analytics query API, for the Sentinel access proof (empty: the cloud's)"),
    "EVENT_GRID_TOPIC_ENDPOINT": (
        "",
        "the Event Grid topic events go to (https://{topic}.{region}-1.{the cloud's suffix}/api/events; empty: none)",
    ),
    "AzureWebJobsStorage__queueServiceUri": ("", "queue endpoint of the Functions storage account (the event outbox)"),
}


def in_azure(env: Mapping[str, str]) -> bool:
    """True on the Functions platform, which sets WEBSITE_SITE_NAME; a local run does not."""
    return bool(env.get("WEBSITE_SITE_NAME", "").strip())


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    if in_azure(env):
        _refuse_local_only(env)
    settings = _load(env)
    if settings.sweep_full_pass_hours + settings.sweep_reach_hours >= settings.rotation_window_days * 24:
        # A record the due index lost is found by the next full pass: that must come before its credential expires.
        raise SettingsError(
            "SWEEP_FULL_PASS_HOURS",
            "plus SWEEP_REACH_HOURS must be less than the rotation window (ROTATION_WINDOW_DAYS)",
        )
    _refuse_other_clouds(settings)
    if in_azure(env):
        _require_cloud_endpoints(settings)
    return settings


def _refuse_local_only(env: Mapping[str, str]) -> None:
    """The stand-in's CA and its vault challenge: switches that, anywhere else, weaken TLS or Key Vault's auth."""
    if env.get("TLS_CA_BUNDLE", "").strip():
        raise SettingsError("TLS_CA_BUNDLE", "is for the local stand-in only; in Azure the public roots are trusted")
    if not _bool(env, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", True):
        raise SettingsError(
            "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", "may be false for the local stand-in only; in Azure remove it"
        )


def _endpoints(settings: Settings) -> dict[str, str]:
    """Every URL setting that names a Microsoft endpoint, by its variable."""
    urls = {
        "AUTHORITY_HOST": settings.authority_host,
        "GRAPH_BASE_URL": settings.graph_base_url,
        "RESOURCE_MANAGER_URL": settings.resource_manager_url,
        "LOG_ANALYTICS_URL": settings.log_analytics_url,
        "KEY_VAULT_URL": settings.key_vault_url,
        "EVENT_GRID_TOPIC_ENDPOINT": settings.event_grid_topic_endpoint or "",
        "AzureWebJobsStorage__blobServiceUri": settings.storage_blob_uri or "",
        "AzureWebJobsStorage__queueServiceUri": settings.storage_queue_uri or "",
        "CONNECTOR_TRUST_ISSUER": settings.connector_trust_issuer or "",
        "AzureWebJobsStorage": _connection_string_endpoint(settings.storage_connection_string or ""),
    }
    return {name: url for name, url in urls.items() if url}


def _connection_string_endpoint(connection_string: str) -> str:
    """Where a storage connection string points (its BlobEndpoint, or its account under its EndpointSuffix, which
    defaults to the public cloud's): https://learn.microsoft.com/azure/storage/common/storage-configure-connection-string."""
    if not connection_string:
        return ""
    fields = {k.strip().lower(): v.strip() for k, _, v in (p.partition("=") for p in connection_string.split(";"))}
    if fields.get("blobendpoint"):
        return fields["blobendpoint"]
    account = fields.get("accountname")
    if not account or fields.get("usedevelopmentstorage", "").lower() == "true":
        return ""  # Azurite locally, or no account to place in a cloud
    return f"https://{account}.blob.{fields.get('endpointsuffix') or 'core.windows.net'}"


def _refuse_other_clouds(settings: Settings) -> None:
    """Anywhere, local runs included: an endpoint of another cloud than AZURE_CLOUD's is a mix (a US Government
    authority with the public Graph), which would send this cloud's tokens where they mean nothing."""
    for name, url in _endpoints(settings).items():
        clouds = clouds_of_host(urlsplit(url).hostname or "")
        if clouds and settings.cloud.name not in clouds:
            raise SettingsError(
                name, f"is an endpoint of {' or '.join(sorted(clouds))}, not of AZURE_CLOUD {settings.cloud.name}"
            )


def _require_cloud_endpoints(settings: Settings) -> None:
    """In Azure every endpoint is exactly the cloud's: scheme and host compared whole (no port, no user info)."""
    cloud = settings.cloud
    endpoints = _endpoints(settings)
    for name, hosts in cloud.hosts().items():
        _require_host(name, endpoints[name], hosts, path_allowed=name == "GRAPH_BASE_URL")
    suffix = re.escape(cloud.event_grid_suffix)
    topic = urlsplit(settings.event_grid_topic_endpoint or "")
    if settings.event_grid_topic_endpoint and (
        not re.fullmatch(rf"{EVENT_GRID_TOPIC}\.{suffix}", topic.netloc.lower())
        or topic.path != "/api/events"
        or topic.query
    ):
        raise SettingsError(
            "EVENT_GRID_TOPIC_ENDPOINT",
            f"must be https://{{topic}}.{{region}}-1.{cloud.event_grid_suffix}/api/events in {cloud.name}, got "
            f"{settings.event_grid_topic_endpoint!r}",
        )
    for name, service in (
        ("AzureWebJobsStorage__blobServiceUri", "blob"),
        ("AzureWebJobsStorage__queueServiceUri", "queue"),
    ):
        url = endpoints.get(name)
        parts = urlsplit(url or "")
        account = rf"[a-z0-9]{{3,24}}\.{service}\.{re.escape(cloud.storage_suffix)}"
        if url and (
            not re.fullmatch(account, parts.netloc.lower()) or parts.path.strip("/") or parts.query or parts.fragment
        ):
            raise SettingsError(
                name, f"must be https://{{account}}.{service}.{cloud.storage_suffix} in {cloud.name}, got {url!r}"
            )
    issuer = urlsplit(settings.connector_trust_issuer or "")
    authorities = cloud.hosts()["AUTHORITY_HOST"]
    if settings.connector_trust_issuer and (
        issuer.scheme != "https"
        or issuer.netloc.lower() not in authorities
        or not re.fullmatch(r"/[0-9a-fA-F-]{36}/v2\.0", issuer.path)
        or issuer.query
        or issuer.fragment
    ):
        raise SettingsError(
            "CONNECTOR_TRUST_ISSUER",
            f"must be https://{authorities[0]}/{{tenant id}}/v2.0 in {cloud.name}, got {settings.connector_trust_issuer!r}",
        )
    parts = urlsplit(settings.key_vault_url)
    host = parts.netloc.lower()
    vault = rf"{VAULT_NAME}\.{re.escape(cloud.key_vault_suffix)}"
    if not re.fullmatch(vault, host) or parts.path.strip("/") or parts.query or parts.fragment:
        raise SettingsError(
            "KEY_VAULT_URL",
            f"must be https://{{vault}}.{cloud.key_vault_suffix} in {cloud.name}, got {settings.key_vault_url!r}",
        )


def _require_host(name: str, url: str, hosts: tuple[str, ...], *, path_allowed: bool) -> None:
    """`url` is https on exactly one of `hosts`: netloc holds user info and port too, so both are refused."""
    parts = urlsplit(url)
    exact = parts.scheme == "https" and parts.netloc.lower() in hosts and not parts.query and not parts.fragment
    if not exact or (parts.path.strip("/") and not path_allowed):
        accepted = " or ".join(f"https://{host}" for host in hosts)
        raise SettingsError(name, f"must be {accepted} in Azure, got {url!r}")


def _cloud(env: Mapping[str, str]) -> Cloud:
    name = env.get("AZURE_CLOUD", "").strip() or PUBLIC.name
    cloud = CLOUDS.get(name)
    if cloud is None:
        raise SettingsError("AZURE_CLOUD", f"must be one of {', '.join(CLOUDS)}, got {name!r}")
    return cloud


def _load(env: Mapping[str, str]) -> Settings:
    max_lifetime = int(_number(env, "MAX_SECRET_LIFETIME_DAYS", 730, 1, 3650))
    cloud = _cloud(env)
    return Settings(
        cloud=cloud,
        key_vault_url=_https_url("KEY_VAULT_URL", _required(env, "KEY_VAULT_URL")),
        home_tenant_id=_guid("HOME_TENANT_ID", _required(env, "HOME_TENANT_ID")),
        managed_identity_client_id=_optional(env, "MANAGED_IDENTITY_CLIENT_ID", _guid),
        name_prefix=_prefix("NAME_PREFIX", env.get("NAME_PREFIX", "").strip() or "tenant-onboarding"),
        secret_lifetime_days=int(_number(env, "SECRET_LIFETIME_DAYS", 180, 1, max_lifetime)),
        max_secret_lifetime_days=max_lifetime,
        certificate_validity_months=int(_number(env, "CERTIFICATE_VALIDITY_MONTHS", 12, 1, 24)),
        graph_base_url=_https_url("GRAPH_BASE_URL", env.get("GRAPH_BASE_URL", "").strip() or f"{cloud.graph}/v1.0"),
        authority_host=_https_url("AUTHORITY_HOST", env.get("AUTHORITY_HOST", "").strip() or cloud.authority),
        tls_ca_bundle=_optional(env, "TLS_CA_BUNDLE", _ca_bundle),
        key_vault_verify_challenge_resource=_bool(env, "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE", True),
        verify_timeout_seconds=_number(env, "VERIFY_TIMEOUT_SECONDS", 60, 1, 600),
        replication_timeout_seconds=_number(env, "REPLICATION_TIMEOUT_SECONDS", 60, 1, 600),
        orphan_grace_minutes=_number(env, "ORPHAN_GRACE_MINUTES", 30, 0, 10080),
        lock_wait_seconds=_number(env, "LOCK_WAIT_SECONDS", 30, 0, 300),
        storage_connection_string=env.get("AzureWebJobsStorage", "").strip() or None,
        storage_blob_uri=_blob_uri(env, cloud),
        rotation_window_days=_number(env, "ROTATION_WINDOW_DAYS", 30, 1, 365),
        rotation_grace_hours=_number(env, "ROTATION_GRACE_HOURS", 48, 0, 24 * 30),
        rotation_concurrency=int(_number(env, "ROTATION_CONCURRENCY", 8, 1, 64)),
        rotation_rate_per_second=_number(env, "ROTATION_RATE_PER_SECOND", 10, 0, 1000),
        provisioner_client_id=_optional(env, "PROVISIONER_CLIENT_ID", _guid),
        connector_trust_subject=_optional(env, "CONNECTOR_TRUST_SUBJECT", _guid),
        connector_trust_issuer=_optional(env, "CONNECTOR_TRUST_ISSUER", _https_url),
        allow_home_tenant=_bool(env, "ALLOW_HOME_TENANT", False),
        resource_manager_url=_https_url(
            "RESOURCE_MANAGER_URL", env.get("RESOURCE_MANAGER_URL", "").strip() or cloud.resource_manager
        ),
        log_analytics_url=_https_url(
            "LOG_ANALYTICS_URL", env.get("LOG_ANALYTICS_URL", "").strip() or cloud.log_analytics
        ),
        event_grid_topic_endpoint=_optional(env, "EVENT_GRID_TOPIC_ENDPOINT", _https_url),
        storage_queue_uri=_queue_uri(env, cloud),
        sweep_invocation_seconds=_number(env, "SWEEP_INVOCATION_SECONDS", 240, 1, 3600),
        sweep_pages_per_invocation=int(_number(env, "SWEEP_PAGES_PER_INVOCATION", 0, 0, 1_000_000)),
        sweep_checkpoint_pages=int(_number(env, "SWEEP_CHECKPOINT_PAGES", 20, 1, 1000)),
        sweep_full_pass_hours=_number(env, "SWEEP_FULL_PASS_HOURS", 168, 1, 24 * 30),
        sweep_reach_hours=_number(env, "SWEEP_REACH_HOURS", 24, 1, 24 * 30),
    )


def _queue_uri(env: Mapping[str, str], cloud: Cloud) -> str | None:
    uri = env.get("AzureWebJobsStorage__queueServiceUri", "").strip()
    if uri:
        return _https_url("AzureWebJobsStorage__queueServiceUri", uri)
    account = env.get("AzureWebJobsStorage__accountName", "").strip()
    return f"https://{account}.queue.{cloud.storage_suffix}" if account else None


def _blob_uri(env: Mapping[str, str], cloud: Cloud) -> str | None:
    uri = env.get("AzureWebJobsStorage__blobServiceUri", "").strip()
    if uri:
        return _https_url("AzureWebJobsStorage__blobServiceUri", uri)
    account = env.get("AzureWebJobsStorage__accountName", "").strip()
    if account:
        if not re.fullmatch(r"[a-z0-9]{3,24}", account):
            raise SettingsError("AzureWebJobsStorage__accountName", "must be 3-24 lowercase letters and digits")
        return f"https://{account}.blob.{cloud.storage_suffix}"
    return None
