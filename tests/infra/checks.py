"""The security-relevant properties of infra/, as plain checks: each returns the problems it finds.

The real template must give [] for every check (test_template.py); each check is also shown to catch its
property broken in a copy of the template (test_mutations.py).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import azure.functions as func
from azure.functions.decorators.function_app import Function

from shared.adapters import locks
from shared.domain.clouds import CLOUDS
from shared.domain.model import SecretKind
from shared.domain.registry import Tag
from shared.entrypoints import rotation_api
from shared.settings import SETTINGS

from .template import REPO, Template, accessor, body, condition, dig, functions, literal_values, loop, nodes

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

# Microsoft's built-in Azure role definition ids and names, as documented in
# learn.microsoft.com/azure/role-based-access-control/built-in-roles (the security, storage and monitor
# pages; each id and name read there). A role id in the template must be in this table, with its name in a
# comment beside it.
BUILT_IN_ROLES = {
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7": "Key Vault Secrets Officer",
    "a4417e6f-fecd-4de8-b567-7b0420556985": "Key Vault Certificates Officer",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": "Storage Blob Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "d5a91429-5739-47e2-a06b-3470a27159e7": "EventGrid Data Sender",
}
# The roles the identity gets on each resource type, each exactly once, and why no broader one (rbac.bicep
# says more). Key Vault Administrator would cover both vault roles, and keys too, which the code never uses.
EXPECTED_ROLES: dict[str, tuple[str, ...]] = {
    "Microsoft.KeyVault/vaults": (
        "Key Vault Secrets Officer",  # set, get, list, tag, delete, recover secrets (and certificates' PKCS#12)
        "Key Vault Certificates Officer",  # create, import, get, list, tag, delete client certificates
    ),
    "Microsoft.Storage/storageAccounts": (
        "Storage Blob Data Owner",  # Functions host storage, leases, package
        "Storage Queue Data Contributor",  # the event outbox (a queue), no queue trigger
    ),
    "Microsoft.Insights/components": ("Monitoring Metrics Publisher",),  # telemetry with Entra authentication
    "Microsoft.EventGrid/topics": ("EventGrid Data Sender",),  # publish events to the app's own topic
}

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# The identity's (and the provisioner's) Microsoft Graph application roles: these three at least, nothing
# beyond these four. Application.Read.All with AppRoleAssignment.ReadWrite.All is the documented least
# privilege for POST /servicePrincipals/{id}/appRoleAssignedTo
# (https://learn.microsoft.com/graph/api/serviceprincipal-post-approleassignedto; a 403 without the read
# permission: microsoftgraph/microsoft-graph-docs-contrib issue 3476). Policy.Read.All is optional
# (grantPolicyReadAll): without it the code still works. Never Application.ReadWrite.All.
REQUIRED_GRAPH_ROLES = {"Application.ReadWrite.OwnedBy", "Application.Read.All", "AppRoleAssignment.ReadWrite.All"}
ALLOWED_GRAPH_ROLES = REQUIRED_GRAPH_ROLES | {"Policy.Read.All"}
# Graph resources that reference an Entra object created earlier in the same deployment, which Entra
# refuses until it has replicated it ("Not a valid reference update",
# https://github.com/microsoftgraph/msgraph-bicep-types/issues/193; a credential on a new app:
# msgraph-bicep-types issues 271 and 301). A deployment cannot retry them, so infra/hooks/postprovision.sh
# writes them, with retries; in Bicep they would fail every first `azd up`.
HOOK_ONLY_GRAPH_TYPES = (
    "Microsoft.Graph/appRoleAssignedTo",
    "Microsoft.Graph/applications/federatedIdentityCredentials",
)
# azd hooks (azure.yaml) and the scripts they run, under infra/. Each is declared for both platforms: azd
# skips a hook that has no variant for the platform it runs on.
HOOKS = {"postprovision": "hooks/postprovision.sh", "postdeploy": "hooks/postdeploy.sh"}
PINNED = '--subscription "$AZURE_SUBSCRIPTION_ID"'
# What postprovision.sh must treat as Entra not having caught up yet, and retry.
REPLICATION_ANSWERS = ("Not a valid reference update", "Request_ResourceNotFound")

# Settings in shared/settings.py that the template deliberately does not set, so the code's defaults apply.
NOT_DEPLOYED = {
    "GRAPH_BASE_URL": "the public cloud's Graph endpoint is the default",
    "AUTHORITY_HOST": "the public cloud's Entra authority is the default",
    "RESOURCE_MANAGER_URL": "the public cloud's Azure Resource Manager is the default",
    "LOG_ANALYTICS_URL": "the public cloud's Log Analytics query API is the default",
    "TLS_CA_BUNDLE": "the local stand-in's CA; Azure endpoints chain to public roots",
    "KEY_VAULT_VERIFY_CHALLENGE_RESOURCE": "false only against the local stand-in",
    "AzureWebJobsStorage": "a connection string holds an account key: local development (Azurite) only",
    "AzureWebJobsStorage__accountName": "the template sets AzureWebJobsStorage__blobServiceUri, which wins",
    "SWEEP_PAGES_PER_INVOCATION": "0 (the time budget alone) is the default; a page cap is for tests and benchmarks",
    "SWEEP_CHECKPOINT_PAGES": "the default (a second of pages at 50 ms) suits Azure; the kill-and-resume tests lower it",
}
# App settings the Functions platform reads: identity-based host storage and telemetry (the audit
# exporter, shared/adapters/telemetry.py, reads the two telemetry settings too, as the platform sets them).
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}
KEY_VAULT_EVENTS = {"Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"}
CERTIFICATE_EVENTS = {"Microsoft.KeyVault.CertificateNearExpiry", "Microsoft.KeyVault.CertificateExpired"}


@dataclass(frozen=True)
class EventSubscription:
    """One Event Grid subscription eventgrid.bicep must declare: the events it delivers, and the eventgrid.bicep
    parameter its subjectEndsWith filter takes, whose default must be the suffix the registry names the objects
    with (a changed name scheme must change the filter too)."""

    what: str
    events: frozenset[str]
    suffix_param: str
    suffix: str


EVENT_SUBSCRIPTIONS = (
    EventSubscription(
        "client secrets", frozenset(KEY_VAULT_EVENTS), "secretNameSuffix", f"-{SecretKind.CLIENT_SECRET.value}"
    ),
    EventSubscription(
        "client certificates", frozenset(CERTIFICATE_EVENTS), "certificateNameSuffix", f"-{Tag.CERTIFICATE_KIND}"
    ),
)

FUNCTION = "app/function.bicep"
KEY_VAULT = "app/keyvault.bicep"
STORAGE = "app/storage.bicep"
RBAC = "app/rbac.bicep"
GRAPH = "app/graph.bicep"
MONITORING = "app/monitoring.bicep"
MAIN = "main.bicep"


@cache
def registered_functions() -> dict[str, Function]:
    """The rotation blueprint's functions by name, indexed once (azure-functions indexes an app only once)."""
    app = func.FunctionApp()
    app.register_functions(rotation_api.bp)
    return {str(f.get_function_name()): f for f in app.get_functions()}


def app_settings(t: Template) -> dict[str, Any]:
    """The function app's app settings, name -> value expression."""
    listed = dig(t.resource(FUNCTION, "site"), "properties", "siteConfig", "appSettings")
    if not isinstance(listed, list):
        return {}
    return {str(item.get("name")): item.get("value") for item in listed if isinstance(item, dict)}


def check_parsed(t: Template, pinned_version: str) -> list[str]:
    problems = [f"infra/{path}: pycep-parser cannot parse it: {error}" for path, error in sorted(t.errors.items())]
    if MAIN not in t.bicep and MAIN not in t.errors:
        problems.append("infra/main.bicep is missing")
    if t.pycep_version != pinned_version:
        problems.append(
            f"pycep-parser {t.pycep_version} parsed the template; requirements-infra.txt pins {pinned_version}"
        )
    return problems


def check_key_vault(t: Template) -> list[str]:
    vault = t.resources(KEY_VAULT).get("vault")
    if not isinstance(vault, dict) or vault.get("type") != "Microsoft.KeyVault/vaults":
        return [f"{KEY_VAULT}: no Key Vault resource named vault"]
    properties = dig(body(vault), "properties") or {}
    problems = []
    for flag in ("enableRbacAuthorization", "enableSoftDelete", "enablePurgeProtection"):
        if properties.get(flag) is not True:
            problems.append(f"Key Vault: {flag} must be true, found {properties.get(flag)!r}")
    if properties.get("accessPolicies"):
        problems.append("Key Vault: access policies are set; access must be Azure RBAC only")
    access = properties.get("publicNetworkAccess")
    if access not in t.params(KEY_VAULT):
        problems.append(f"Key Vault: publicNetworkAccess must be a parameter, found {access!r}")
    passed = dig(t.modules(MAIN), "keyVault", "config", "params", access) if isinstance(access, str) else None
    allowed = [
        d.get("argument") for d in dig(t.params(MAIN), str(passed), "decorators") or [] if d.get("type") == "allowed"
    ]
    if passed not in t.params(MAIN) or allowed != [["Enabled", "Disabled"]]:
        problems.append(
            "Key Vault: main.bicep must pass publicNetworkAccess from a parameter allowing Enabled/Disabled"
        )
    return problems


def check_storage(t: Template, locks_container: str = locks.CONTAINER) -> list[str]:
    properties = dig(t.resource(STORAGE, "storage"), "properties")
    if not isinstance(properties, dict):
        return [f"{STORAGE}: no storage account named storage"]
    problems = []
    expected = {
        "allowSharedKeyAccess": False,  # no account keys: host storage is reached with the identity
        "allowBlobPublicAccess": False,
        "supportsHttpsTrafficOnly": True,
        "minimumTlsVersion": "TLS1_2",
    }
    for key, value in expected.items():
        if properties.get(key) != value:
            problems.append(f"storage account: {key} must be {value!r}, found {properties.get(key)!r}")
    for path, name, resource in t.resources_of_type("Microsoft.Storage/storageAccounts/blobServices/containers"):
        if dig(body(resource), "properties", "publicAccess") != "None":
            problems.append(f"{path}: container {name} must have publicAccess None")
    if dig(t.params(STORAGE), "locksContainerName", "default") != locks_container:
        problems.append(
            f"storage: the locks container must be {locks_container!r} (shared/adapters/locks.py CONTAINER)"
        )
    return problems


def check_no_shared_keys(t: Template) -> list[str]:
    """No storage account key anywhere: no listKeys() but the Functions host's own keys, no AccountKey=."""
    problems = []
    for path in sorted(t.bicep):
        text = "\n".join(line for line in t.text(path).splitlines() if not line.lstrip().startswith("//"))
        if re.search(r"AccountKey\s*=", text):
            problems.append(f"{path}: a storage connection string with an account key")
        for match in re.finditer(r"listKeys\(([^)]*)\)|\.listKeys\(", text):
            if "/host/default" not in (match.group(1) or ""):
                problems.append(f"{path}: listKeys() of something other than the function host's keys")
    return problems


def check_function_app(t: Template) -> list[str]:
    problems = []
    plan = t.resource(FUNCTION, "plan")
    if (
        dig(plan, "sku") != {"tier": "FlexConsumption", "name": "FC1"}
        or dig(plan, "properties", "reserved") is not True
    ):
        problems.append("function app: the plan must be Flex Consumption (FC1, Linux)")
    site = t.resource(FUNCTION, "site")
    if site.get("kind") != "functionapp,linux":
        problems.append(f"function app: kind must be functionapp,linux, found {site.get('kind')!r}")
    identity = site.get("identity") or {}
    identities = list(identity.get("userAssignedIdentities") or {})
    if identity.get("type") != "UserAssigned" or identities != ["'${identityId}'"]:
        problems.append("function app: it must run as the user-assigned identity only (no system-assigned identity)")
    properties = site.get("properties") or {}
    if properties.get("httpsOnly") is not True:
        problems.append("function app: httpsOnly must be true")
    if dig(properties, "siteConfig", "minTlsVersion") != "1.2":
        problems.append("function app: minTlsVersion must be 1.2")
    config = properties.get("functionAppConfig") or {}
    if config.get("runtime") != {"name": "python", "version": "3.11"}:
        problems.append(f"function app: runtime must be python 3.11, found {config.get('runtime')!r}")
    authentication = dig(config, "deployment", "storage", "authentication") or {}
    if authentication != {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}:
        problems.append("function app: the deployment package must be read with the user-assigned identity")
    for policy in ("ftpPublishing", "scmPublishing"):
        if dig(t.resource(FUNCTION, policy), "properties", "allow") is not False:
            problems.append(f"function app: basic-auth publishing ({policy}) must be disallowed")
    settings = app_settings(t)
    identity_based = {
        "AzureWebJobsStorage__credential": "managedidentity",
        "AzureWebJobsStorage__clientId": "identityClientId",
        "MANAGED_IDENTITY_CLIENT_ID": "identityClientId",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "ClientId=${identityClientId};Authorization=AAD",
    }
    for name, value in identity_based.items():
        if settings.get(name) != value:
            problems.append(f"function app: {name} must be {value!r}, found {settings.get(name)!r}")
    insights = t.resource(MONITORING, "applicationInsights")
    if dig(insights, "properties", "DisableLocalAuth") is not True:
        problems.append("Application Insights: DisableLocalAuth must be true (telemetry with the identity only)")
    return problems


def check_app_settings(
    t: Template, settings: Mapping[str, object], binding_settings: set[str] | None = None
) -> list[str]:
    """The template's app settings are exactly the code's settings (less NOT_DEPLOYED) plus the platform's."""
    listed = dig(t.resource(FUNCTION, "site"), "properties", "siteConfig", "appSettings")
    if not isinstance(listed, list):
        return [f"{FUNCTION}: the site's siteConfig.appSettings must be a literal list"]
    names = [str(item.get("name")) for item in listed if isinstance(item, dict)]
    expected = (set(settings) - set(NOT_DEPLOYED)) | PLATFORM_SETTINGS
    problems = [f"app setting {name} is set twice" for name in sorted({n for n in names if names.count(n) > 1})]
    problems += [
        f"app setting {name} is set but neither the code (shared/settings.py SETTINGS) nor the platform reads it"
        for name in sorted(set(names) - expected)
    ]
    problems += [
        f"app setting {name} is read by the code but the template does not set it"
        for name in sorted(expected - set(names))
    ]
    problems += [
        f"NOT_DEPLOYED names {name}, which shared/settings.py no longer reads"
        for name in sorted(set(NOT_DEPLOYED) - set(settings))
    ]
    if binding_settings is None:
        binding_settings = {
            match
            for function in registered_functions().values()
            for binding in function.get_bindings()
            for value in binding.get_dict_repr().values()
            for match in re.findall(r"%(\w+)%", str(value))
        }
    problems += [
        f"a trigger reads %{name}% but the template does not set {name}"
        for name in sorted(binding_settings - set(names))
    ]
    return problems


def check_app_setting_defaults(
    t: Template, settings: Mapping[str, tuple[str | None, str]], parameters_json: str
) -> list[str]:
    """Where main.bicep or main.parameters.json (`${VAR=default}`) supplies a default for a code setting,
    it is the code's default."""
    problems = []
    passed = dig(t.modules(MAIN), "functionApp", "config", "params") or {}
    azd_values = json.loads(parameters_json).get("parameters", {})
    for name, value in app_settings(t).items():
        if name not in settings:
            continue
        arguments = functions(value, "string")
        module_param = arguments[0].get("value_to_convert") if arguments else value
        main_param = passed.get(module_param) if isinstance(module_param, str) else None
        default = dig(t.params(MAIN), str(main_param), "default") if isinstance(main_param, str) else None
        code_default = settings[name][0]
        if isinstance(default, bool):
            default = str(default).lower()  # what Bicep's string() makes of a bool
        if default is not None and code_default is not None and str(default) != code_default:
            problems.append(
                f"app setting {name}: main.bicep defaults to {default!r}, shared/settings.py to {code_default!r}"
            )
        azd_default = re.fullmatch(r"\$\{\w+=(.*)\}", str(dig(azd_values, str(main_param), "value")))
        if azd_default and code_default is not None and azd_default.group(1) != code_default:
            problems.append(
                f"app setting {name}: main.parameters.json defaults to {azd_default.group(1)!r}, "
                f"shared/settings.py to {code_default!r}"
            )
    return problems


def check_role_assignments(t: Template) -> list[str]:
    """Exactly the expected roles on each resource, each once, scoped to that resource, for the identity."""
    problems = []
    found: dict[str, list[str]] = {}
    role_ids = {name: dig(var, "value") for name, var in t.variables(RBAC).items()}
    for path, name, resource in t.resources_of_type("Microsoft.Authorization/roleAssignments"):
        config = body(resource)
        scope = config.get("scope")
        target = t.resources(path).get(str(scope)) if path == RBAC else None
        target_type = dig(target, "type")
        if not isinstance(target_type, str):
            problems.append(
                f"{path}: role assignment {name} must be scoped to one resource of this file, found {scope!r}"
            )
            continue
        definition = functions(dig(config, "properties", "roleDefinitionId"), "subscription_resource_id")
        role_var = dig(definition, 0, "resource_name_1")
        role_id = role_ids.get(str(role_var), role_var)
        role_name = BUILT_IN_ROLES.get(str(role_id), f"unknown role {role_id!r}")
        expected = EXPECTED_ROLES.get(target_type, ())
        if role_name not in expected:
            problems.append(
                f"{target_type}: the identity gets {role_name}, expected {' or '.join(expected) or 'no role'}"
            )
        found.setdefault(target_type, []).append(role_name)
        if (
            dig(config, "properties", "principalId") != "principalId"
            or dig(config, "properties", "principalType") != "ServicePrincipal"
        ):
            problems.append(f"{path}: role assignment {name} must be for the identity (principalId, ServicePrincipal)")
        guid = functions(config.get("name"), "guid")
        if not guid or accessor(dig(guid, 0, "base_string")) != [scope, "id"] or role_var not in guid[0].values():
            problems.append(f"{path}: role assignment {name} must be named guid({scope}.id, principalId, role)")
    for target_type, roles in EXPECTED_ROLES.items():
        given = found.get(target_type, [])
        if not given:
            problems.append(f"{target_type}: the identity gets no role; it needs {' and '.join(roles)}")
            continue
        for role in roles:
            if role not in given:
                problems.append(f"{target_type}: the identity does not get {role}, which it needs")
        for role in sorted({r for r in given if given.count(r) > 1}):
            problems.append(f"{target_type}: the identity gets {role} {given.count(role)} times; expected once")
    return problems


def check_role_names(t: Template) -> list[str]:
    """Every role definition id is a commented variable whose comment names that built-in role."""
    problems = []
    for path in sorted(t.bicep):
        role_vars = {
            str(dig(call, "resource_name_1"))
            for call in functions(t.tree(path), "subscription_resource_id")
            if dig(call, "resource_type") == "Microsoft.Authorization/roleDefinitions"
        }
        text = t.text(path)
        for var in sorted(role_vars):
            if GUID.match(var):
                problems.append(f"{path}: role id {var} is inline; use a variable commented with the role name")
                continue
            line = re.search(rf"^var {re.escape(var)} = '([0-9a-f-]+)'(?:\s*//\s*(.+))?$", text, re.M)
            if line is None:
                problems.append(f"{path}: role variable {var} must be a role id literal")
                continue
            role_id, comment = line.group(1), (line.group(2) or "").strip()
            documented = BUILT_IN_ROLES.get(role_id)
            if documented is None:
                problems.append(f"{path}: {var} = {role_id} is not a documented built-in role id")
            elif comment != documented:
                problems.append(f"{path}: {var} = {role_id} is {documented}, but its comment says {comment!r}")
    return problems


def _graph_role_set_problems(t: Template, where: str, array: Any) -> list[str]:
    problems = []
    values = literal_values(array, t.variables(GRAPH))
    if not REQUIRED_GRAPH_ROLES.issubset(values):
        problems.append(f"{where}: missing Graph roles {sorted(REQUIRED_GRAPH_ROLES - values)}")
    if not values.issubset(ALLOWED_GRAPH_ROLES):
        problems.append(f"{where}: Graph roles broader than needed: {sorted(values - ALLOWED_GRAPH_ROLES)}")
    return problems


def _graph_role_lookup_problems(t: Template, where: str, expression: Any, array: Any) -> list[str]:
    problems = _graph_role_set_problems(t, where, array)
    looked_up = [
        call for call in functions(expression, "filter") if accessor(call.get("input_array")) == ["graphSp", "appRoles"]
    ]
    if not looked_up or any(isinstance(n, str) and GUID.match(n) for n in nodes(expression)):
        problems.append(f"{where}: the role id must be looked up by value in graphSp.appRoles, not written")
    return problems


def check_graph_roles(t: Template, bicepconfig: str) -> list[str]:
    problems = []
    if "microsoftGraphV1" not in (t.tree(GRAPH).get("extensions") or {}):
        problems.append(f"{GRAPH}: must declare `extension microsoftGraphV1`")
    try:
        alias = json.loads(re.sub(r"^\s*//.*$", "", bicepconfig, flags=re.M))["extensions"]["microsoftGraphV1"]
    except (ValueError, KeyError, TypeError):
        alias = None
    if not str(alias).startswith("br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:"):
        problems.append("bicepconfig.json must map microsoftGraphV1 to the Microsoft Graph v1.0 extension")
    graph_sp = t.resources(GRAPH).get("graphSp") or {}
    app_id = literal_values(dig(body(graph_sp), "appId"), t.variables(GRAPH))
    if (
        graph_sp.get("type") != "Microsoft.Graph/servicePrincipals"
        or not graph_sp.get("existing")
        or app_id != {GRAPH_APP_ID}
    ):
        problems.append(
            f"{GRAPH}: graphSp must be the existing Microsoft Graph service principal (appId {GRAPH_APP_ID})"
        )
    for resource_type in HOOK_ONLY_GRAPH_TYPES:
        for path, name, _ in t.resources_of_type(resource_type):
            problems.append(
                f"{path}: {name} is a {resource_type}, which fails a first deployment on Entra replication; "
                "infra/hooks/postprovision.sh writes it, with retries"
            )
    # The role list has one home, graph.bicep's graphRoles: the provisioner asks for it, and main.bicep hands
    # it to postprovision.sh, which grants it to the identity (main.bicep's MANAGED_IDENTITY_PRINCIPAL_ID).
    problems += _graph_role_set_problems(t, "graphRoles", "graphRoles")
    if dig(t.outputs(GRAPH), "graphRoles", "value") != "graphRoles":
        problems.append(f"{GRAPH}: output graphRoles must be the graphRoles variable")
    joined = functions(dig(t.outputs(MAIN), "GRAPH_APP_ROLES", "value"), "join")
    if (
        len(joined) != 1
        or accessor(joined[0].get("input_array")) != ["graph", "outputs", "graphRoles"]
        or joined[0].get("delimiter") != " "
    ):
        problems.append("main.bicep: output GRAPH_APP_ROLES must be join(graph.outputs.graphRoles, ' ')")
    identity = dig(t.outputs(MAIN), "MANAGED_IDENTITY_PRINCIPAL_ID", "value")
    if accessor(identity) != ["identity", "outputs", "principalId"]:
        problems.append("main.bicep: output MANAGED_IDENTITY_PRINCIPAL_ID must be the identity's principalId")
    return problems


def check_provisioner(t: Template) -> list[str]:
    problems = []
    app = t.resources(GRAPH).get("provisioner") or {}
    if condition(app) != "deployProvisioner":
        problems.append(f"{GRAPH}: provisioner must be created only if (deployProvisioner)")
    for path in (GRAPH, MAIN):
        if dig(t.params(path), "deployProvisioner", "default") is not False:
            problems.append(f"{path}: deployProvisioner must default to false")
    config = body(app)
    if app.get("type") != "Microsoft.Graph/applications" or config.get("signInAudience") != "AzureADMultipleOrgs":
        problems.append("provisioner: must be a multi-tenant application (signInAudience AzureADMultipleOrgs)")
    if config.get("uniqueName") not in t.params(GRAPH):
        problems.append("provisioner: uniqueName must be a parameter")
    access = config.get("requiredResourceAccess")
    if not isinstance(access, list) or len(access) != 1:
        problems.append("provisioner: requiredResourceAccess must list Microsoft Graph only")
    else:
        graph = access[0]
        if literal_values(graph.get("resourceAppId"), t.variables(GRAPH)) != {GRAPH_APP_ID}:
            problems.append("provisioner: requiredResourceAccess must be for Microsoft Graph")
        entries = graph.get("resourceAccess")
        if dig(body({"config": entries}), "type") != "Role":
            problems.append("provisioner: Graph permissions must be application permissions (type Role)")
        problems += _graph_role_lookup_problems(
            t, "provisioner", dig(body({"config": entries}), "id"), loop({"config": entries}).get("array_name")
        )
    # Its federated credential is written by postprovision.sh (check_hooks), on the app main.bicep names,
    # with this tenant as the issuer.
    unique_name = dig(t.outputs(GRAPH), "provisionerUniqueName", "value", "operator")
    operands = dig(unique_name, "operands") or {}
    if (
        dig(unique_name, "type") != "conditional"
        or operands.get("condition") != "deployProvisioner"
        or accessor(operands.get("true_value")) != ["provisioner", "uniqueName"]
        or operands.get("false_value") != ""
    ):
        problems.append(
            f"{GRAPH}: output provisionerUniqueName must be deployProvisioner ? provisioner.uniqueName : ''"
        )
    if accessor(dig(t.outputs(MAIN), "PROVISIONER_UNIQUE_NAME", "value")) != [
        "graph",
        "outputs",
        "provisionerUniqueName",
    ]:
        problems.append("main.bicep: output PROVISIONER_UNIQUE_NAME must be graph.outputs.provisionerUniqueName")
    issuer = dig(t.outputs(MAIN), "FEDERATED_CREDENTIAL_ISSUER", "value")
    if issuer != "${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0":
        problems.append(f"provisioner federated credential: the issuer must be this tenant's Entra, found {issuer!r}")
    output = dig(t.outputs(GRAPH), "provisionerClientId", "value")
    from_output = any(accessor(node) == ["provisioner", "appId"] for node in nodes(output))
    passed = accessor(dig(t.modules(MAIN), "functionApp", "config", "params", "provisionerClientId"))
    if not from_output or passed != ["graph", "outputs", "provisionerClientId"]:
        problems.append("PROVISIONER_CLIENT_ID must be the provisioner's appId (graph.bicep output, via main.bicep)")
    if app_settings(t).get("PROVISIONER_CLIENT_ID") != "provisionerClientId":
        problems.append("app setting PROVISIONER_CLIENT_ID must be the provisionerClientId parameter")
    return problems


def check_event_grid(t: Template, hook_script: str) -> list[str]:
    """The vault's system topic, and one subscription per EVENT_SUBSCRIPTIONS entry, told apart by the events
    it delivers: each filtered on its registry suffix, each to the code's Event Grid trigger's webhook."""
    problems = []
    topic = dig(t.resource(KEY_VAULT, "systemTopic"), "properties") or {}
    if topic.get("topicType") != "Microsoft.KeyVault.vaults" or accessor(topic.get("source")) != ["vault", "id"]:
        problems.append("Event Grid: the system topic must be the vault's (topicType Microsoft.KeyVault.vaults)")
    subscriptions = list(t.resources_of_type("Microsoft.EventGrid/systemTopics/eventSubscriptions"))
    if len(subscriptions) != len(EVENT_SUBSCRIPTIONS):
        problems.append(
            f"Event Grid: expected {len(EVENT_SUBSCRIPTIONS)} event subscriptions "
            f"({', '.join(s.what for s in EVENT_SUBSCRIPTIONS)}), found {len(subscriptions)}"
        )
    subscribed = set().union(*(s.events for s in EVENT_SUBSCRIPTIONS))
    if {e.lower() for e in subscribed} != rotation_api.ROTATION_EVENTS:
        problems.append(
            "Event Grid: shared/entrypoints/rotation_api.py ROTATION_EVENTS differ from the subscribed events"
        )
    if "eventgrid.bicep" not in hook_script:
        problems.append("infra/hooks/postdeploy.sh must deploy eventgrid.bicep")
    functions_by_name = registered_functions()
    matched: dict[EventSubscription, list[str]] = {}
    for path, name, resource in subscriptions:
        properties = dig(body(resource), "properties") or {}
        events = dig(properties, "filter", "includedEventTypes")
        spec = next(
            (s for s in EVENT_SUBSCRIPTIONS if isinstance(events, list) and sorted(events) == sorted(s.events)), None
        )
        if spec is None:
            wanted = " or ".join(str(sorted(s.events)) for s in EVENT_SUBSCRIPTIONS)
            problems.append(f"Event Grid: {name} must deliver exactly {wanted}, found {events!r}")
        else:
            matched.setdefault(spec, []).append(name)
            # The filter must keep what the registry names these objects: a changed name scheme must change it.
            suffix = (t.params(path).get(spec.suffix_param) or {}).get("default")
            if suffix != spec.suffix or dig(properties, "filter", "subjectEndsWith") != spec.suffix_param:
                problems.append(
                    f"Event Grid: {name} ({spec.what}) must filter on subjectEndsWith {spec.suffix_param}, "
                    f"defaulting to {spec.suffix!r} (shared/domain/registry.py), found "
                    f"{dig(properties, 'filter', 'subjectEndsWith')!r} defaulting to {suffix!r}"
                )
        destination = properties.get("destination") or {}
        url = str(dig(destination, "properties", "endpointUrl"))
        if (
            destination.get("endpointType") != "WebHook"
            or "/runtime/webhooks/EventGrid?functionName=${functionName}&code=" not in url
        ):
            problems.append(f"Event Grid: {name}'s destination must be the function's Event Grid webhook")
        if ".systemKeys.eventgrid_extension" not in url or "/host/default" not in url:
            problems.append(f"Event Grid: {name}'s webhook must carry the eventgrid_extension system key")
        if properties.get("eventDeliverySchema") != "EventGridSchema":
            problems.append(f"Event Grid: {name} must deliver the Event Grid schema, which the Python trigger reads")
        function_name = literal_values("functionName", t.variables(path))
        triggers = {
            getattr(functions_by_name[n].get_trigger(), "type", None) for n in function_name if n in functions_by_name
        }
        if triggers != {"eventGridTrigger"}:
            problems.append(
                f"Event Grid: {name}'s functionName {sorted(function_name)} is not the code's Event Grid trigger"
            )
    for spec in EVENT_SUBSCRIPTIONS:
        names = matched.get(spec, [])
        if len(names) != 1:
            problems.append(
                f"Event Grid: {spec.what} need exactly one subscription delivering {sorted(spec.events)}, "
                f"found {names or 'none'}"
            )
    return problems


def check_events(t: Template) -> list[str]:
    """The topic the app publishes to: CloudEvents 1.0 in, local (key and SAS) authentication off, its endpoint the
    EVENT_GRID_TOPIC_ENDPOINT app setting."""
    problems = []
    topics = [found for found in t.resources_of_type("Microsoft.EventGrid/topics") if not found[2].get("existing")]
    if len(topics) != 1:
        return [f"Event Grid: exactly one custom topic, found {len(topics)}"]
    _, name, topic = topics[0]
    properties = dig(body(topic), "properties") or {}
    if properties.get("inputSchema") != "CloudEventSchemaV1_0":
        problems.append(f"Event Grid: {name} must take CloudEvents 1.0 (inputSchema CloudEventSchemaV1_0)")
    if properties.get("disableLocalAuth") is not True:
        problems.append(f"Event Grid: {name} must have local authentication off (disableLocalAuth: true)")
    passed = dig(t.modules(MAIN), "functionApp", "config", "params", "eventGridTopicEndpoint")
    if accessor(passed) != ["events", "outputs", "endpoint"]:
        problems.append("main.bicep: the function app's eventGridTopicEndpoint must be the events module's endpoint")
    return problems


ALERTS = "app/alerts.bicep"
ALERT_FIELDS = {
    "name", "displayName", "description", "severity", "evaluationFrequency", "windowSize", "query", "dimensions",
    "operator", "threshold",
}  # fmt: skip
# An alert fires on any row (something happened), or on none in its window (something stopped happening).
ALERT_CONDITIONS = {("GreaterThan", 0), ("LessThan", 1)}


def check_alerts(t: Template, alerts_json: str, parameters_json: str) -> list[str]:
    """The alert rules: one log search rule per alerts.json entry, on the Application Insights component, each
    notifying the action group, whose email receivers come from the ALERT_EMAILS setting. (What the queries
    read is checked against the events the code emits by tests/unit/test_alerts.py.)"""
    problems = []
    try:
        rules = json.loads(alerts_json)
    except ValueError as error:
        return [f"alerts.json: not JSON: {error}"]
    for index, rule in enumerate(rules if isinstance(rules, list) else [None]):
        if not isinstance(rule, dict) or set(rule) != ALERT_FIELDS:
            problems.append(f"alerts.json[{index}]: exactly the fields {sorted(ALERT_FIELDS)}")
        elif rule["severity"] not in range(5) or not str(rule["query"]).startswith("customEvents"):
            problems.append(f"alerts.json[{index}]: severity 0-4 and a query on customEvents")
        elif (rule["operator"], rule["threshold"]) not in ALERT_CONDITIONS:
            problems.append(f"alerts.json[{index}]: operator and threshold one of {sorted(ALERT_CONDITIONS)}")
    found = list(t.resources_of_type("Microsoft.Insights/scheduledQueryRules"))
    if len(found) != 1 or found[0][0] != ALERTS:
        return [*problems, f"{ALERTS}: exactly one scheduledQueryRules resource, found {len(found)}"]
    _, name, rule_resource = found[0]
    load = dig(t.variables(ALERTS), loop(rule_resource).get("array_name", ""), "value", "function")
    if dig(load, "type") != "load_json_content" or dig(load, "parameters", "file_path") != "alerts.json":
        problems.append(f"{ALERTS}: {name} must loop over loadJsonContent('alerts.json')")
    properties = dig(body(rule_resource), "properties") or {}
    if [accessor(scope) for scope in properties.get("scopes") or []] != [["applicationInsights", "id"]]:
        problems.append(f"{ALERTS}: {name} must be scoped to the Application Insights component alone")
    if [accessor(group) for group in dig(properties, "actions", "actionGroups") or []] != [["actionGroup", "id"]]:
        problems.append(f"{ALERTS}: {name} must notify the action group")
    criteria = dig(properties, "criteria", "allOf", 0) or {}
    condition = [accessor(criteria.get(k)) for k in ("query", "operator", "threshold")]
    if condition != [["r", "query"], ["r", "operator"], ["r", "threshold"]]:
        problems.append(f"{ALERTS}: {name} must alert on its alerts.json query, operator and threshold")
    receivers = dig(t.resource(ALERTS, "actionGroup"), "properties", "emailReceivers")
    emails = dig(t.variables(ALERTS), "emails", "value")
    if dig(receivers, "loop_type", "detail", "array_name") != "emails" or "alertEmails" not in json.dumps(emails):
        problems.append(f"{ALERTS}: the action group's email receivers must come from the alertEmails parameter")
    passed = dig(t.modules(MAIN), "alerts", "config", "params", "alertEmails")
    if passed != "alertEmails" or "${ALERT_EMAILS=}" not in parameters_json:
        problems.append("main.bicep: the alerts module's alertEmails must be ALERT_EMAILS (main.parameters.json)")
    return problems


def check_azd(t: Template, parameters_json: str, abbreviations_json: str) -> list[str]:
    """azd conventions: subscription scope, resourceToken, abbreviations, every name a parameter."""
    problems = []
    if dig(t.tree(MAIN), "globals", "scope", "value") != "subscription":
        problems.append("main.bicep: targetScope must be subscription")
    if not any(r.get("type") == "Microsoft.Resources/resourceGroups" for r in t.resources(MAIN).values()):
        problems.append("main.bicep: must create the resource group")
    token = dig(t.variables(MAIN), "resourceToken", "value")
    unique = dig(functions(token, "to_lower"), 0, "string_to_change", "function", "parameters") or {}
    subscription_id = [{"function": {"type": "subscription", "parameters": {"subscription_id": None}}}, "id"]
    seeds = [unique.get("extra_string_1"), unique.get("extra_string_2")]
    if accessor(unique.get("base_string")) != subscription_id or seeds != ["environmentName", "location"]:
        problems.append(
            "main.bicep: resourceToken must be toLower(uniqueString(subscription().id, environmentName, location))"
        )
    abbreviations = json.loads(abbreviations_json)
    for key in sorted(set(re.findall(r"abbrs\.(\w+)", t.text(MAIN)))):
        if key not in abbreviations:
            problems.append(f"main.bicep uses abbrs.{key}, which abbreviations.json lacks")
    if (
        dig(functions(dig(t.variables(MAIN), "abbrs", "value"), "load_json_content"), 0, "file_path")
        != "abbreviations.json"
    ):
        problems.append("main.bicep: abbrs must be loadJsonContent('abbreviations.json')")
    parameters = json.loads(parameters_json)["parameters"]
    for name in sorted(set(parameters) - set(t.params(MAIN))):
        problems.append(f"main.parameters.json sets {name}, which main.bicep does not declare")
    if (
        dig(parameters, "environmentName", "value") != "${AZURE_ENV_NAME}"
        or dig(parameters, "location", "value") != "${AZURE_LOCATION}"
    ):
        problems.append(
            "main.parameters.json must map environmentName and location to AZURE_ENV_NAME and AZURE_LOCATION"
        )
    # Every resource a module creates takes its name from the module's parameters; main.bicep passes a
    # name that is an overridable parameter (default '' = generated).
    name_params = {n for n, p in t.params(MAIN).items() if n.endswith("Name") and n != "environmentName"}
    for name in sorted(name_params):
        if dig(t.params(MAIN), name, "default") != "" or name not in parameters:
            problems.append(f"main.bicep: {name} must default to '' and be settable in main.parameters.json")
    for module_name, module in t.modules(MAIN).items():
        path = str(dig(module, "detail", "path"))
        for resource_name, resource in t.resources(path).items():
            config = body(resource)
            if (
                resource.get("existing")
                or "parent" in config
                or resource.get("type", "").startswith("Microsoft.Graph/")
            ):
                continue
            given = config.get("name")
            if functions(given, "guid"):
                continue
            # A resource made once per item of a loop (alerts.bicep's rules) needs a name per item: the parameter
            # first, then what tells the items apart.
            looped_name = isinstance(given, str) and loop(resource) and given.startswith("${")
            if looped_name and str(given)[2:].split("}", 1)[0] in t.params(path):
                continue
            if given not in t.params(path):
                problems.append(f"{path}: {resource_name}'s name {given!r} must come from a parameter")
                continue
            source = dig(body(module), "params", given)
            if not isinstance(source, str) or not _overridable(t, source, name_params):
                problems.append(
                    f"main.bicep: module {module_name} must pass {given} from an overridable name parameter"
                )
    service = dig(t.azure_yaml, "services", "api") or {}
    if (service.get("host"), service.get("language"), service.get("project")) != ("function", "python", "."):
        problems.append("azure.yaml: service api must be a python function app from the repository root")
    if dig(t.azure_yaml, "infra", "path") not in (None, "infra"):
        problems.append("azure.yaml: infra.path must be infra")
    tag = dig(t.resource(FUNCTION, "site"), "tags", "function", "parameters", "arg_2", "'azd-service-name'")
    if tag != "api":
        problems.append("function app: must be tagged azd-service-name=api for azd deploy")
    return problems


def _logical_lines(script: str) -> list[str]:
    """The script's commands: continuation lines joined, comment lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", script)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _unquoted(line: str) -> str:
    return re.sub(r"'[^']*'", "''", re.sub(r'"(?:[^"\\]|\\.)*"', '""', line))


def check_hooks(t: Template, scripts: Mapping[str, str]) -> list[str]:
    """The azd hooks: declared for both platforms, every Azure CLI call pinned to the azd environment's
    subscription, JMESPath's null written as a literal, replication retried where postprovision.sh
    writes to Graph, and only main.bicep's outputs read from the environment."""
    problems = []
    for hook, path in HOOKS.items():
        for platform in ("posix", "windows"):
            entry = dig(t.azure_yaml, "hooks", hook, platform) or {}
            if entry.get("run") != f"infra/{path}" or entry.get("shell") != "sh" or entry.get("continueOnError"):
                problems.append(
                    f"azure.yaml: hook {hook} must run infra/{path} (shell sh, stopping on error) on {platform} too: "
                    "azd skips a hook that has no variant for its platform"
                )
        script_file = t.root / "infra" / path
        if not script_file.is_file():
            problems.append(f"infra/{path} is missing")
        elif not os.access(script_file, os.X_OK):
            problems.append(f"infra/{path} must be executable: azd runs it as a command on Linux and macOS")
    attributes = t.root / "infra" / ".gitattributes"
    if not attributes.is_file() or not re.search(r"^hooks/\*\.sh\s.*\beol=lf\b", attributes.read_text("utf-8"), re.M):
        problems.append("infra/.gitattributes must keep hooks/*.sh at LF line ends (bash on Windows runs them)")
    outputs = set(t.outputs(MAIN))
    for path, script in scripts.items():
        for line in _logical_lines(script):
            bare = _unquoted(line)
            if re.search(r"(^|[\s;&|(])az\s", bare) and "command -v az" not in bare and PINNED not in line:
                problems.append(f"infra/{path}: an az call without {PINNED}: {line[:120]}")
        for _quote, query in re.findall(r"--query (['\"])(.*?)\1", script):
            if re.search(r"\bnull\b", re.sub(r"`[^`]*`|'[^']*'", "", query)):
                problems.append(f"infra/{path}: JMESPath's null is `null`; a bare null names a field: {query}")
        for variable in sorted(set(re.findall(r"\$\{([A-Z][A-Z0-9_]*):(?:\?|-\})", script))):
            if variable not in outputs:
                problems.append(f"infra/{path} reads {variable}, which main.bicep does not output")
    provision = scripts.get(HOOKS["postprovision"], "")
    for line in _logical_lines(provision):
        if re.search(r"\bazs? rest\b", line) and '--resource "$graph_root"' not in line:
            problems.append(
                f'infra/{HOOKS["postprovision"]}: a Graph call without --resource "$graph_root" (the Azure CLI has no '
                f"DoD Graph of its own): {line[:100]}"
            )
    retried = re.search(r"^replication='([^']*)'", provision, re.M)
    for answer in REPLICATION_ANSWERS:
        if retried is None or answer not in retried.group(1).split("|"):
            problems.append(f"infra/{HOOKS['postprovision']}: Graph writes must be retried on {answer!r}")
    lines = _logical_lines(provision)
    writes = [line for line in lines if "/appRoleAssignedTo" in line or "federatedIdentityCredentials(" in line]
    if len(writes) < 2 or not all(line.startswith("graph_write ") for line in writes):
        problems.append(f"infra/{HOOKS['postprovision']}: the grant and the credential must go through graph_write")
    trust = next((line for line in writes if "federatedIdentityCredentials(" in line), "")
    for part in (
        '\\"issuer\\": \\"$issuer\\"',
        '\\"subject\\": \\"$principal\\"',
        '\\"audiences\\": [\\"$audience\\"]',
        '"Prefer=create-if-missing"',
    ):
        if part not in trust:
            problems.append(f"infra/{HOOKS['postprovision']}: the provisioner's credential must carry {part}")
    if "audience=${FEDERATION_AUDIENCE:-api://AzureADTokenExchange}" not in lines:
        problems.append(
            f"infra/{HOOKS['postprovision']}: the credential's audience must be main.bicep's FEDERATION_AUDIENCE"
        )
    if (
        "principal=$MANAGED_IDENTITY_PRINCIPAL_ID" not in lines
        or "issuer=${FEDERATED_CREDENTIAL_ISSUER:?$missing}" not in lines
    ):
        problems.append(
            f"infra/{HOOKS['postprovision']}: the credential's subject and issuer must be main.bicep's "
            "MANAGED_IDENTITY_PRINCIPAL_ID and FEDERATED_CREDENTIAL_ISSUER"
        )
    return problems


def _overridable(t: Template, variable: str, name_params: set[str]) -> bool:
    """The variable is `!empty(xName) ? xName : generated` for a main.bicep name parameter."""
    expression = dig(t.variables(MAIN), variable, "value")
    tested = {str(call.get("item_to_test")) for call in functions(expression, "empty")}
    return bool(tested & name_params) and any(
        dig(node, "operator", "operands", "true_value") in name_params for node in nodes(expression)
    )


def checkov_problems(report: Any) -> list[str]:
    """What checkov's JSON report (--output json) says is wrong: files it could not parse (it exits 0 on
    those), failed checks, and checks skipped without a reason (`// checkov:skip=ID: reason` in the Bicep)."""
    problems = []
    for part in report if isinstance(report, list) else [report]:
        results = part.get("results") if isinstance(part, dict) else None
        if not isinstance(results, dict):
            continue  # checkov's summary-only answer when it found nothing to check
        unparsed = results.get("parsing_errors", [])
        problems += [f"checkov cannot parse {path}" for path in unparsed]
        if not unparsed and dig(part, "summary", "parsing_errors"):
            problems.append(
                f"checkov cannot parse {part['summary']['parsing_errors']} file(s) (run it without --quiet)"
            )
        problems += [
            f"checkov {c['check_id']} failed on {c['resource']} ({c['file_path']}): {c['check_name']}"
            for c in results.get("failed_checks", [])
        ]
        for check in results.get("skipped_checks", []):
            reason = str(dig(check, "check_result", "suppress_comment") or "").strip()
            if not reason or reason == "No comment provided":
                problems.append(f"checkov {check['check_id']} skipped on {check['resource']} without a reason")
    return problems


def read(t: Template, path: str) -> str:
    """A file under the template's infra/, as written."""
    return (t.root / "infra" / path).read_text(encoding="utf-8")


def pinned_pycep_version() -> str:
    pinned = re.search(r"^pycep-parser==(\S+)", (REPO / "requirements-infra.txt").read_text(encoding="utf-8"), re.M)
    return pinned.group(1) if pinned else "unpinned"


# Every check, with the inputs it reads from the template's own folder (so a broken copy is checked whole).
def _bicep_map(text: str, variable: str) -> dict[str, str]:
    """A `var name = { Key: 'value' ... }` of string values, as written."""
    found = re.search(rf"^var {variable} = \{{\n(.*?)^\}}", text, re.M | re.S)
    return dict(re.findall(r"^\s*(\w+): '([^']*)'$", found.group(1), re.M)) if found else {}


def check_clouds(t: Template, hook: str) -> list[str]:
    """main.bicep's cloud maps and the postprovision hook's accepted values are shared/domain/clouds.py's: three
    copies of one table, held together here."""
    text = t.text(MAIN)
    problems = []
    expected_graph = {name: cloud.graph for name, cloud in CLOUDS.items()}
    expected_audience = {name: cloud.federation_audience for name, cloud in CLOUDS.items()}
    if _bicep_map(text, "graphOfCloud") != expected_graph:
        problems.append(f"{MAIN}: graphOfCloud must be shared/domain/clouds.py's Graph per cloud: {expected_graph}")
    if _bicep_map(text, "federationAudienceOfCloud") != expected_audience:
        problems.append(f"{MAIN}: federationAudienceOfCloud must be shared/domain/clouds.py's audiences")
    environments = _bicep_map(text, "cloudOfEnvironment")
    # Bicep's environment().name is azd's cloud name; the app's name for the same cloud (its GCC High Graph).
    named = {cloud.arm_environment: name for name, cloud in CLOUDS.items() if not name.endswith("DoD")}
    if environments != named:
        problems.append(f"{MAIN}: cloudOfEnvironment must map Bicep's cloud names to AZURE_CLOUD's: {named}")
    graph_case = re.search(r"case \$graph_root in\n\s*([^)\n]*)\)", hook)
    if graph_case is None or set(graph_case.group(1).split(" | ")) != set(expected_graph.values()):
        problems.append(
            f"infra/{HOOKS['postprovision']}: GRAPH_URL must be checked against exactly the table's Graph roots"
        )
    audience_case = re.search(r"case \$audience in\n\s*([^)\n]*)\)", hook)
    if audience_case is None or set(audience_case.group(1).split(" | ")) != set(expected_audience.values()):
        problems.append(f"infra/{HOOKS['postprovision']}: FEDERATION_AUDIENCE must be checked against the table's")
    return problems


CHECKS: dict[str, Callable[[Template], list[str]]] = {
    "parsed": lambda t: check_parsed(t, pinned_pycep_version()),
    "key_vault": check_key_vault,
    "storage": check_storage,
    "no_shared_keys": check_no_shared_keys,
    "function_app": check_function_app,
    "app_settings": lambda t: check_app_settings(t, SETTINGS),
    "app_setting_defaults": lambda t: check_app_setting_defaults(t, SETTINGS, read(t, "main.parameters.json")),
    "role_assignments": check_role_assignments,
    "role_names": check_role_names,
    "graph_roles": lambda t: check_graph_roles(t, read(t, "bicepconfig.json")),
    "provisioner": check_provisioner,
    "event_grid": lambda t: check_event_grid(t, read(t, "hooks/postdeploy.sh")),
    "azd": lambda t: check_azd(t, read(t, "main.parameters.json"), read(t, "abbreviations.json")),
    "events": check_events,
    "alerts": lambda t: check_alerts(t, read(t, "app/alerts.json"), read(t, "main.parameters.json")),
    "hooks": lambda t: check_hooks(t, {path: read(t, path) for path in HOOKS.values()}),
    "clouds": lambda t: check_clouds(t, read(t, HOOKS["postprovision"])),
}
