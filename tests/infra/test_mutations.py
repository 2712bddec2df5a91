"""Each check catches its property broken: every mutation edits one copy of the template (infra/ and
azure.yaml) and the named check must report the expected problem. All copies are parsed in one
subprocess, so the whole table costs about one pycep start."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from .checks import CHECKS
from .template import Template, copy_template, load


@dataclass(frozen=True)
class Mutation:
    name: str
    path: str  # relative to the project root
    old: str  # must occur exactly once
    new: str
    check: str
    expected: str  # a substring of one reported problem


STORAGE_KEY_SETTING = """        {
          name: 'AzureWebJobsStorage'
          value: 'DefaultEndpointsProtocol=https;AccountName=x;AccountKey=${storageKey}'
        }
        // The code.
"""

# The webhook both Event Grid subscriptions send to, after what names each (the URL itself occurs twice).
WEBHOOK = (
    "  properties: {\n    destination: {\n      endpointType: 'WebHook'\n      properties: {\n        endpointUrl: "
    "'https://${site.properties.defaultHostName}/runtime/webhooks/EventGrid?functionName=${functionName}&code="
    "${listKeys('${site.id}/host/default', '2024-04-01').systemKeys.eventgrid_extension}'"
)
SECRET_WEBHOOK = "  name: eventSubscriptionName\n" + WEBHOOK
CERTIFICATE_WEBHOOK = "  name: '${eventSubscriptionName}-certificates'\n" + WEBHOOK

CERTIFICATES_OFFICER_ROLE = """resource vaultCertificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificatesOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
"""

TELEMETRY_ROLE = """resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
"""

MUTATIONS = [
    # Key Vault
    Mutation(
        "purge protection off",
        "infra/app/keyvault.bicep",
        "enablePurgeProtection: true",
        "enablePurgeProtection: false",
        "key_vault",
        "enablePurgeProtection must be true",
    ),
    Mutation(
        "soft delete off",
        "infra/app/keyvault.bicep",
        "enableSoftDelete: true",
        "enableSoftDelete: false",
        "key_vault",
        "enableSoftDelete must be true",
    ),
    Mutation(
        "access policies instead of RBAC",
        "infra/app/keyvault.bicep",
        "enableRbacAuthorization: true",
        "enableRbacAuthorization: false",
        "key_vault",
        "enableRbacAuthorization must be true",
    ),
    Mutation(
        "vault network access fixed",
        "infra/app/keyvault.bicep",
        "publicNetworkAccess: publicNetworkAccess\n",
        "publicNetworkAccess: 'Enabled'\n",
        "key_vault",
        "publicNetworkAccess must be a parameter",
    ),
    # Storage and keys
    Mutation(
        "shared keys allowed",
        "infra/app/storage.bicep",
        "allowSharedKeyAccess: false",
        "allowSharedKeyAccess: true",
        "storage",
        "allowSharedKeyAccess must be False",
    ),
    Mutation(
        "public blobs allowed",
        "infra/app/storage.bicep",
        "allowBlobPublicAccess: false",
        "allowBlobPublicAccess: true",
        "storage",
        "allowBlobPublicAccess must be False",
    ),
    Mutation(
        "locks container public",
        "infra/app/storage.bicep",
        "name: locksContainerName\n  properties: {\n    publicAccess: 'None'",
        "name: locksContainerName\n  properties: {\n    publicAccess: 'Blob'",
        "storage",
        "container locksContainer must have publicAccess None",
    ),
    Mutation(
        "locks container renamed",
        "infra/app/storage.bicep",
        "param locksContainerName string = 'tenant-onboarding-locks'",
        "param locksContainerName string = 'locks'",
        "storage",
        "shared/adapters/locks.py CONTAINER",
    ),
    Mutation(
        "storage connection string with a key",
        "infra/app/function.bicep",
        "        // The code.\n",
        STORAGE_KEY_SETTING,
        "no_shared_keys",
        "a storage connection string with an account key",
    ),
    Mutation(
        "storage account keys listed",
        "infra/app/storage.bicep",
        "output name string = storage.name",
        "output key string = storage.listKeys().keys[0].value\noutput name string = storage.name",
        "no_shared_keys",
        "listKeys() of something other than the function host's keys",
    ),
    # Function app
    Mutation(
        "system-assigned identity added",
        "infra/app/function.bicep",
        "    type: 'UserAssigned'\n",
        "    type: 'SystemAssigned, UserAssigned'\n",
        "function_app",
        "user-assigned identity only",
    ),
    Mutation(
        "python 3.12",
        "infra/app/function.bicep",
        "version: '3.11'",
        "version: '3.12'",
        "function_app",
        "runtime must be python 3.11",
    ),
    Mutation(
        "package read with a key",
        "infra/app/function.bicep",
        "type: 'UserAssignedIdentity'",
        "type: 'StorageAccountConnectionString'",
        "function_app",
        "deployment package must be read with the user-assigned identity",
    ),
    Mutation(
        "basic-auth scm publishing",
        "infra/app/function.bicep",
        "name: 'scm'\n  properties: {\n    allow: false",
        "name: 'scm'\n  properties: {\n    allow: true",
        "function_app",
        "basic-auth publishing (scmPublishing)",
    ),
    Mutation(
        "host storage with keys",
        "infra/app/function.bicep",
        "value: 'managedidentity'",
        "value: 'connectionstring'",
        "function_app",
        "AzureWebJobsStorage__credential must be 'managedidentity'",
    ),
    Mutation(
        "telemetry with the instrumentation key",
        "infra/app/monitoring.bicep",
        "DisableLocalAuth: true",
        "DisableLocalAuth: false",
        "function_app",
        "DisableLocalAuth must be true",
    ),
    Mutation(
        "not Flex Consumption",
        "infra/app/function.bicep",
        "name: 'FC1'",
        "name: 'Y1'",
        "function_app",
        "Flex Consumption",
    ),
    # App settings against shared/settings.py
    Mutation(
        "setting the code does not read",
        "infra/app/function.bicep",
        "        // The code.\n",
        "        {\n          name: 'FEATURE_X'\n          value: '1'\n        }\n",
        "app_settings",
        "FEATURE_X is set but neither the code",
    ),
    Mutation(
        "local-only setting deployed",
        "infra/app/function.bicep",
        "        // The code.\n",
        "        {\n          name: 'GRAPH_BASE_URL'\n          value: 'https://graph.microsoft.com/v1.0'\n        }\n",
        "app_settings",
        "GRAPH_BASE_URL is set but neither the code",
    ),
    Mutation(
        "setting the code reads left out",
        "infra/app/function.bicep",
        "        {\n          name: 'ROTATION_SCHEDULE'\n          value: rotationSchedule\n        }\n",
        "",
        "app_settings",
        "ROTATION_SCHEDULE is read by the code but the template does not set it",
    ),
    Mutation(
        "timer schedule left out",
        "infra/app/function.bicep",
        "        {\n          name: 'ROTATION_SCHEDULE'\n          value: rotationSchedule\n        }\n",
        "",
        "app_settings",
        "a trigger reads %ROTATION_SCHEDULE%",
    ),
    Mutation(
        "setting set twice",
        "infra/app/function.bicep",
        "        // The code.\n",
        "        {\n          name: 'NAME_PREFIX'\n          value: 'x'\n        }\n",
        "app_settings",
        "NAME_PREFIX is set twice",
    ),
    Mutation(
        "default differs from the code's",
        "infra/main.bicep",
        "param secretLifetimeDays int = 180",
        "param secretLifetimeDays int = 90",
        "app_setting_defaults",
        "SECRET_LIFETIME_DAYS: main.bicep defaults to 90",
    ),
    Mutation(
        "certificate validity default differs from the code's",
        "infra/main.bicep",
        "param certificateValidityMonths int = 12",
        "param certificateValidityMonths int = 24",
        "app_setting_defaults",
        "CERTIFICATE_VALIDITY_MONTHS: main.bicep defaults to 24",
    ),
    Mutation(
        "azd default differs from the code's",
        "infra/main.parameters.json",
        "${ROTATION_SCHEDULE=0 */10 * * * *}",
        "${ROTATION_SCHEDULE=0 0 * * * *}",
        "app_setting_defaults",
        "ROTATION_SCHEDULE: main.parameters.json defaults to '0 0 * * * *'",
    ),
    # Azure roles
    Mutation(
        "Key Vault Administrator",
        "infra/app/rbac.bicep",
        "var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer",
        "var keyVaultSecretsOfficer = '00482a5a-887f-4fb3-b363-3b7fe8e74483' // Key Vault Administrator",
        "role_assignments",
        "gets Key Vault Administrator, expected Key Vault Secrets Officer",
    ),
    Mutation(
        "telemetry role removed",
        "infra/app/rbac.bicep",
        TELEMETRY_ROLE,
        "",
        "role_assignments",
        "Microsoft.Insights/components: the identity gets no role",
    ),
    Mutation(
        "role on the resource group",
        "infra/app/rbac.bicep",
        "keyVaultSecretsOfficer)\n  scope: vault\n",
        "keyVaultSecretsOfficer)\n  scope: resourceGroup()\n",
        "role_assignments",
        "must be scoped to one resource",
    ),
    Mutation(
        "Certificates Officer on the resource group",
        "infra/app/rbac.bicep",
        "keyVaultCertificatesOfficer)\n  scope: vault\n",
        "keyVaultCertificatesOfficer)\n  scope: resourceGroup()\n",
        "role_assignments",
        "role assignment vaultCertificatesOfficer must be scoped to one resource",
    ),
    Mutation(
        "Certificates Officer removed",
        "infra/app/rbac.bicep",
        CERTIFICATES_OFFICER_ROLE,
        "",
        "role_assignments",
        "Microsoft.KeyVault/vaults: the identity does not get Key Vault Certificates Officer",
    ),
    Mutation(
        "Certificates Officer changed to an unknown role",
        "infra/app/rbac.bicep",
        "var keyVaultCertificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985' // Key Vault Certificates Officer",
        "var keyVaultCertificatesOfficer = 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba' // Key Vault Certificate User",
        "role_assignments",
        "gets unknown role 'db79e9a7-68ee-4b58-9aeb-b90e7c24fcba'",
    ),
    Mutation(
        "Secrets Officer twice instead of Certificates Officer",
        "infra/app/rbac.bicep",
        CERTIFICATES_OFFICER_ROLE,
        CERTIFICATES_OFFICER_ROLE.replace("keyVaultCertificatesOfficer", "keyVaultSecretsOfficer"),
        "role_assignments",
        "Microsoft.KeyVault/vaults: the identity gets Key Vault Secrets Officer 2 times; expected once",
    ),
    Mutation(
        "role comment wrong",
        "infra/app/rbac.bicep",
        "'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer",
        "'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets User",
        "role_names",
        "is Key Vault Secrets Officer, but its comment says 'Key Vault Secrets User'",
    ),
    Mutation(
        "role id mistyped",
        "infra/app/rbac.bicep",
        "'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner",
        "'b7e6dc6d-f1e8-4753-8033-0f276bb0955c' // Storage Blob Data Owner",
        "role_names",
        "is not a documented built-in role id",
    ),
    Mutation(
        "role id without a comment",
        "infra/app/rbac.bicep",
        "'3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher",
        "'3913510d-42f4-4e42-8a64-420c390055eb'",
        "role_names",
        "but its comment says ''",
    ),
    # Microsoft Graph
    Mutation(
        "Application.ReadWrite.All",
        "infra/app/graph.bicep",
        "  'Application.ReadWrite.OwnedBy'\n",
        "  'Application.ReadWrite.OwnedBy'\n  'Application.ReadWrite.All'\n",
        "graph_roles",
        "broader than needed: ['Application.ReadWrite.All']",
    ),
    Mutation(
        "consent role missing",
        "infra/app/graph.bicep",
        "  'AppRoleAssignment.ReadWrite.All'\n",
        "",
        "graph_roles",
        "missing Graph roles ['AppRoleAssignment.ReadWrite.All']",
    ),
    Mutation(
        "consent's read permission missing",
        "infra/app/graph.bicep",
        "  'Application.Read.All'\n",
        "",
        "graph_roles",
        "missing Graph roles ['Application.Read.All']",
    ),
    Mutation(
        "grant back in Bicep",
        "infra/app/graph.bicep",
        "output provisionerClientId",
        "resource grant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = {\n  appRoleId: role\n  principalId: principalId\n"
        "  resourceId: graphSp.id\n}\n\noutput provisionerClientId",
        "graph_roles",
        "grant is a Microsoft.Graph/appRoleAssignedTo, which fails a first deployment on Entra replication",
    ),
    Mutation(
        "credential back in Bicep",
        "infra/app/graph.bicep",
        "output provisionerClientId",
        "resource trust 'Microsoft.Graph/applications/federatedIdentityCredentials@v1.0' = {\n"
        "  name: '${provisioner.uniqueName}/function-managed-identity'\n  issuer: 'x'\n  subject: 'y'\n"
        "  audiences: [\n    'api://AzureADTokenExchange'\n  ]\n}\n\noutput provisionerClientId",
        "graph_roles",
        "trust is a Microsoft.Graph/applications/federatedIdentityCredentials",
    ),
    Mutation(
        "hook told other roles",
        "infra/main.bicep",
        "output GRAPH_APP_ROLES string = join(graph.outputs.graphRoles, ' ')",
        "output GRAPH_APP_ROLES string = 'Application.ReadWrite.All'",
        "graph_roles",
        "GRAPH_APP_ROLES must be join(graph.outputs.graphRoles, ' ')",
    ),
    Mutation(
        "Graph role id written",
        "infra/app/graph.bicep",
        "        id: filter(graphSp.appRoles, appRole => appRole.value == role)[0].id",
        "        id: '18a4783c-866b-4cc7-a460-3d5e5662c884'",
        "provisioner",
        "looked up by value",
    ),
    Mutation(
        "no Graph extension",
        "infra/app/graph.bicep",
        "extension microsoftGraphV1\n",
        "",
        "graph_roles",
        "extension microsoftGraphV1",
    ),
    Mutation(
        "provisioner always created",
        "infra/app/graph.bicep",
        "'Microsoft.Graph/applications@v1.0' = if (deployProvisioner) {",
        "'Microsoft.Graph/applications@v1.0' = {",
        "provisioner",
        "provisioner must be created only if (deployProvisioner)",
    ),
    Mutation(
        "provisioner single-tenant",
        "infra/app/graph.bicep",
        "signInAudience: 'AzureADMultipleOrgs'",
        "signInAudience: 'AzureADMyOrg'",
        "provisioner",
        "multi-tenant",
    ),
    Mutation(
        "provisioner asks delegated permissions",
        "infra/app/graph.bicep",
        "type: 'Role'",
        "type: 'Scope'",
        "provisioner",
        "application permissions (type Role)",
    ),
    Mutation(
        "provisioner asks Directory.ReadWrite.All",
        "infra/app/graph.bicep",
        "  'Application.ReadWrite.OwnedBy'\n",
        "  'Application.ReadWrite.OwnedBy'\n  'Directory.ReadWrite.All'\n",
        "provisioner",
        "broader than needed: ['Directory.ReadWrite.All']",
    ),
    Mutation(
        "credential issued by another tenant",
        "infra/main.bicep",
        "'${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'",
        "'${environment().authentication.loginEndpoint}common/v2.0'",
        "provisioner",
        "the issuer must be this tenant's Entra",
    ),
    Mutation(
        "credential on another app",
        "infra/app/graph.bicep",
        "output provisionerUniqueName string = deployProvisioner ? provisioner.uniqueName : ''",
        "output provisionerUniqueName string = provisionerDisplayName",
        "provisioner",
        "provisionerUniqueName must be deployProvisioner ? provisioner.uniqueName : ''",
    ),
    Mutation(
        "provisioner id not wired",
        "infra/main.bicep",
        "provisionerClientId: graph.outputs.provisionerClientId",
        "provisionerClientId: ''",
        "provisioner",
        "PROVISIONER_CLIENT_ID must be the provisioner's appId",
    ),
    # Event Grid
    Mutation(
        "SecretExpired not delivered",
        "infra/eventgrid.bicep",
        "        'Microsoft.KeyVault.SecretExpired'\n",
        "",
        "event_grid",
        "must deliver exactly",
    ),
    Mutation(
        "events sent to the timer",
        "infra/eventgrid.bicep",
        "var functionName = 'secret_near_expiry'",
        "var functionName = 'rotation_sweep'",
        "event_grid",
        "is not the code's Event Grid trigger",
    ),
    Mutation(
        "webhook without the system key",
        "infra/eventgrid.bicep",
        SECRET_WEBHOOK,
        SECRET_WEBHOOK.replace(".systemKeys.eventgrid_extension", ".masterKey"),
        "event_grid",
        "secretNearExpiry's webhook must carry the eventgrid_extension system key",
    ),
    Mutation(
        "certificate webhook without the system key",
        "infra/eventgrid.bicep",
        CERTIFICATE_WEBHOOK,
        CERTIFICATE_WEBHOOK.replace(".systemKeys.eventgrid_extension", ".masterKey"),
        "event_grid",
        "certificateNearExpiry's webhook must carry the eventgrid_extension system key",
    ),
    Mutation(
        "certificate events to another endpoint",
        "infra/eventgrid.bicep",
        CERTIFICATE_WEBHOOK,
        CERTIFICATE_WEBHOOK.replace("/runtime/webhooks/EventGrid?", "/api/rotate?"),
        "event_grid",
        "certificateNearExpiry's destination must be the function's Event Grid webhook",
    ),
    Mutation(
        "certificate events in the CloudEvents schema",
        "infra/eventgrid.bicep",
        "    eventDeliverySchema: 'EventGridSchema'\n    filter: {\n      includedEventTypes: [\n"
        "        'Microsoft.KeyVault.CertificateNearExpiry'",
        "    eventDeliverySchema: 'CloudEventSchemaV1_0'\n    filter: {\n      includedEventTypes: [\n"
        "        'Microsoft.KeyVault.CertificateNearExpiry'",
        "event_grid",
        "certificateNearExpiry must deliver the Event Grid schema",
    ),
    Mutation(
        "CertificateExpired not delivered",
        "infra/eventgrid.bicep",
        "        'Microsoft.KeyVault.CertificateExpired'\n",
        "",
        "event_grid",
        "client certificates need exactly one subscription delivering",
    ),
    Mutation(
        "certificate events filtered on another name",
        "infra/eventgrid.bicep",
        "param certificateNameSuffix string = '-client-certificate'",
        "param certificateNameSuffix string = '-client-cert'",
        "event_grid",
        "certificateNearExpiry (client certificates) must filter on subjectEndsWith certificateNameSuffix, "
        "defaulting to '-client-certificate'",
    ),
    Mutation(
        "certificate events filtered on the secret suffix",
        "infra/eventgrid.bicep",
        "      subjectEndsWith: certificateNameSuffix\n",
        "      subjectEndsWith: secretNameSuffix\n",
        "event_grid",
        "certificateNearExpiry (client certificates) must filter on subjectEndsWith certificateNameSuffix",
    ),
    Mutation(
        "certificate subscription removed",
        "infra/eventgrid.bicep",
        "resource certificateNearExpiry 'Microsoft.EventGrid/systemTopics/eventSubscriptions@",
        "resource certificateNearExpiry 'Microsoft.EventGrid/systemTopics/notSubscriptions@",
        "event_grid",
        "client certificates need exactly one subscription delivering",
    ),
    Mutation(
        "events filtered on another secret name",
        "infra/eventgrid.bicep",
        "param secretNameSuffix string = '-client-secret'",
        "param secretNameSuffix string = '-clientsecret'",
        "event_grid",
        "subjectEndsWith",
    ),
    Mutation(
        "topic of another source",
        "infra/app/keyvault.bicep",
        "topicType: 'Microsoft.KeyVault.vaults'",
        "topicType: 'Microsoft.Storage.StorageAccounts'",
        "event_grid",
        "the vault's",
    ),
    # azd hooks
    Mutation(
        "hook reads a missing output",
        "infra/main.bicep",
        "output AZURE_EVENT_SUBSCRIPTION_NAME string = subscriptionName\n",
        "",
        "hooks",
        "postdeploy.sh reads AZURE_EVENT_SUBSCRIPTION_NAME, which main.bicep does not output",
    ),
    Mutation(
        "no subscription to pin to",
        "infra/main.bicep",
        "output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId\n",
        "",
        "hooks",
        "postprovision.sh reads AZURE_SUBSCRIPTION_ID, which main.bicep does not output",
    ),
    Mutation(
        "Event Grid subscription skipped on Windows",
        "azure.yaml",
        "    windows:\n      shell: sh\n      run: infra/hooks/postdeploy.sh\n      interactive: false\n"
        "      continueOnError: false\n",
        "",
        "hooks",
        "hook postdeploy must run infra/hooks/postdeploy.sh (shell sh, stopping on error) on windows too",
    ),
    Mutation(
        "Graph roles never granted",
        "azure.yaml",
        "  postprovision:\n",
        "  postprovision-off:\n",
        "hooks",
        "hook postprovision must run infra/hooks/postprovision.sh (shell sh, stopping on error) on posix too",
    ),
    Mutation(
        "hooks checked out with CRLF on Windows",
        "infra/.gitattributes",
        "hooks/*.sh text eol=lf",
        "hooks/*.sh text",
        "hooks",
        "infra/.gitattributes must keep hooks/*.sh at LF line ends",
    ),
    Mutation(
        "an az call on the default subscription",
        "infra/hooks/postdeploy.sh",
        'azs_out=$(az "$@" --subscription "$AZURE_SUBSCRIPTION_ID") || return',
        'azs_out=$(az "$@") || return',
        "hooks",
        'postdeploy.sh: an az call without --subscription "$AZURE_SUBSCRIPTION_ID"',
    ),
    Mutation(
        "a Graph write on the default subscription",
        "infra/hooks/postprovision.sh",
        '"$@" \\\n      --subscription "$AZURE_SUBSCRIPTION_ID" --output none',
        '"$@" \\\n      --output none',
        "hooks",
        'postprovision.sh: an az call without --subscription "$AZURE_SUBSCRIPTION_ID"',
    ),
    Mutation(
        "JMESPath null as a field name",
        "infra/hooks/postdeploy.sh",
        "!= `null`'",
        "!= null'",
        "hooks",
        "JMESPath's null is `null`; a bare null names a field",
    ),
    Mutation(
        "replication not retried",
        "infra/hooks/postprovision.sh",
        "replication='Not a valid reference update|",
        "replication='",
        "hooks",
        "Graph writes must be retried on 'Not a valid reference update'",
    ),
    Mutation(
        "grant written once, not retried",
        "infra/hooks/postprovision.sh",
        '  graph_write post "$graph/servicePrincipals/$graph_sp/appRoleAssignedTo"',
        '  az rest --subscription "$AZURE_SUBSCRIPTION_ID" --method post --url "$graph/servicePrincipals/$graph_sp/appRoleAssignedTo"',
        "hooks",
        "the grant and the credential must go through graph_write",
    ),
    Mutation(
        "a Graph call without the cloud's Graph as its resource",
        "infra/hooks/postprovision.sh",
        'tenant=$(azs rest --method get --resource "$graph_root" --url',
        "tenant=$(azs rest --method get --url",
        "hooks",
        "a Graph call without --resource",
    ),
    Mutation(
        "the DoD Graph root in Bicep drifts from the table",
        "infra/main.bicep",
        "  AzureUSGovernmentDoD: 'https://dod-graph.microsoft.us'\n",
        "  AzureUSGovernmentDoD: 'https://graph.microsoft.us'\n",
        "clouds",
        "graphOfCloud must be",
    ),
    Mutation(
        "China's exchange audience in Bicep drifts from the table",
        "infra/main.bicep",
        "  AzureChinaCloud: 'api://AzureADTokenExchangeChina'\n",
        "  AzureChinaCloud: 'api://AzureADTokenExchange'\n",
        "clouds",
        "federationAudienceOfCloud must be",
    ),
    Mutation(
        "the hook accepts any Graph",
        "infra/hooks/postprovision.sh",
        " | https://microsoftgraph.chinacloudapi.cn) ;;",
        " | https://microsoftgraph.chinacloudapi.cn | https://*) ;;",
        "clouds",
        "GRAPH_URL must be checked",
    ),
    Mutation(
        "credential audience",
        "infra/hooks/postprovision.sh",
        '[\\"$audience\\"]',
        '[\\"api://other\\"]',
        "hooks",
        "the provisioner's credential must carry",
    ),
    Mutation(
        "credential trusts someone else",
        "infra/hooks/postprovision.sh",
        '\\"subject\\": \\"$principal\\"',
        '\\"subject\\": \\"$provisioner\\"',
        "hooks",
        "the provisioner's credential must carry",
    ),
    # azd conventions
    Mutation(
        "resourceToken without the environment",
        "infra/main.bicep",
        "uniqueString(subscription().id, environmentName, location)",
        "uniqueString(subscription().id, location)",
        "azd",
        "resourceToken must be",
    ),
    Mutation(
        "fixed vault name",
        "infra/app/keyvault.bicep",
        "  name: name\n  location: location\n  tags: tags\n  properties: {\n    tenantId",
        "  name: 'kv-fixed'\n  location: location\n  tags: tags\n  properties: {\n    tenantId",
        "azd",
        "vault's name 'kv-fixed' must come from a parameter",
    ),
    Mutation(
        "name not overridable",
        "infra/main.bicep",
        "param keyVaultName string = ''",
        "param keyVaultName string = 'kv-mine'",
        "azd",
        "keyVaultName must default to ''",
    ),
    Mutation(
        "name passed literally",
        "infra/main.bicep",
        "    name: kvName\n",
        "    name: 'kv-mine'\n",
        "azd",
        "module keyVault must pass name from an overridable name parameter",
    ),
    Mutation(
        "unknown abbreviation",
        "infra/main.bicep",
        "abbrs.keyVaultVaults",
        "abbrs.keyVaults",
        "azd",
        "abbreviations.json lacks",
    ),
    Mutation(
        "not a function app service",
        "azure.yaml",
        "host: function",
        "host: appservice",
        "azd",
        "service api must be a python function app",
    ),
    Mutation(
        "unparsable file",
        "infra/app/keyvault.bicep",
        "output name string = vault.name",
        "output name string = vault.name\nresource broken 'x' = {",
        "parsed",
        "app/keyvault.bicep: pycep-parser cannot parse it",
    ),
    # Alerts
    Mutation(
        "alert rules scoped to the whole resource group",
        "infra/app/alerts.bicep",
        "    scopes: [\n      applicationInsights.id\n    ]",
        "    scopes: [\n      resourceGroup().id\n    ]",
        "alerts",
        "scoped to the Application Insights component alone",
    ),
    Mutation(
        "alert rules notify nobody",
        "infra/app/alerts.bicep",
        "      actionGroups: [\n        actionGroup.id\n      ]",
        "      actionGroups: []",
        "alerts",
        "must notify the action group",
    ),
    Mutation(
        "receivers fixed in the template",
        "infra/app/alerts.bicep",
        "var emails = empty(alertEmails) ? [] : split(replace(alertEmails, ' ', ''), ',')",
        "var emails = ['ops@example.com']",
        "alerts",
        "must come from the alertEmails parameter",
    ),
    Mutation(
        "an alert rule without its query",
        "infra/app/alerts.json",
        '    "query": "customEvents | where name == \\"audit.rotation.stuck\\"',
        '    "kql": "customEvents | where name == \\"audit.rotation.stuck\\"',
        "alerts",
        "exactly the fields",
    ),
    Mutation(
        "the absence rule fires when sweeps complete",
        "infra/app/alerts.json",
        '    "operator": "LessThan",\n    "threshold": 1',
        '    "operator": "GreaterThan",\n    "threshold": 1',
        "alerts",
        "operator and threshold one of",
    ),
    # Events
    Mutation(
        "the topic takes access keys",
        "infra/app/events.bicep",
        "    disableLocalAuth: true",
        "    disableLocalAuth: false",
        "events",
        "local authentication off",
    ),
    Mutation(
        "the topic takes Event Grid's own schema",
        "infra/app/events.bicep",
        "    inputSchema: 'CloudEventSchemaV1_0'",
        "    inputSchema: 'EventGridSchema'",
        "events",
        "CloudEvents 1.0",
    ),
    Mutation(
        "the app publishes to a fixed topic",
        "infra/main.bicep",
        "    eventGridTopicEndpoint: events.outputs.endpoint",
        "    eventGridTopicEndpoint: 'https://elsewhere.westus-1.eventgrid.azure.net/api/events'",
        "events",
        "must be the events module's endpoint",
    ),
    Mutation(
        "the sender role on the whole resource group",
        "infra/app/rbac.bicep",
        "  name: guid(topic.id, principalId, eventGridDataSender)\n  scope: topic",
        "  name: guid(topic.id, principalId, eventGridDataSender)\n  scope: resourceGroup()",
        "role_assignments",
        "EventGrid Data Sender",
    ),
]


@pytest.fixture(scope="module")
def mutants(infra_tools: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Template]:
    roots: dict[str, Path] = {}
    for index, mutation in enumerate(MUTATIONS):
        root = copy_template(tmp_path_factory.mktemp(f"mutant{index}"))
        target = root / mutation.path
        text = target.read_text(encoding="utf-8")
        assert text.count(mutation.old) == 1, f"{mutation.name}: the text to break must occur once in {mutation.path}"
        target.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
        roots[mutation.name] = root
    parsed = load(list(roots.values()))
    return {name: parsed[root] for name, root in roots.items()}


def test_mutation_names_are_unique() -> None:
    assert len({m.name for m in MUTATIONS}) == len(MUTATIONS)


def test_every_check_has_a_mutation() -> None:
    assert {m.check for m in MUTATIONS} == set(CHECKS)


@pytest.mark.parametrize("mutation", MUTATIONS, ids=[m.name for m in MUTATIONS])
def test_check_catches_the_mutation(mutants: dict[str, Template], mutation: Mutation) -> None:
    problems = CHECKS[mutation.check](mutants[mutation.name])
    assert problems, f"{mutation.check} found nothing wrong after: {mutation.name}"
    assert any(mutation.expected in problem for problem in problems), problems
