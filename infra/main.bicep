// Tenant onboarding: everything `azd up` creates (README, "Deploy").
// Subscription scope: creates the resource group, then one module per concern. Every name is a
// parameter; empty means the abbreviation (abbreviations.json) + resourceToken default.
// tests/infra parses these files and checks the security-relevant properties (Bicep cannot be
// compiled in CI here).
targetScope = 'subscription'

// ---------------------------------------------------------------- azd environment

@minLength(1)
@maxLength(64)
@description('Name of the azd environment; with the subscription and the location it seeds resourceToken.')
param environmentName string

@minLength(1)
@description('Region of every resource. It must offer Flex Consumption (az functionapp list-flexconsumption-locations).')
@metadata({
  azd: {
    type: 'location'
  }
})
param location string

// ---------------------------------------------------------------- cloud

// AZURE_CLOUD (shared/domain/clouds.py): empty means the cloud azd deploys to (`azd config set cloud.name`,
// https://learn.microsoft.com/azure/developer/azure-developer-cli/sovereign-clouds), read from environment().name.
// Set it only for Microsoft 365 DoD tenants: AzureUSGovernmentDoD is Azure Government with DoD's Graph.
@description('AZURE_CLOUD: empty (the cloud deployed to), or AzureUSGovernmentDoD for Microsoft 365 DoD tenants.')
@allowed([
  ''
  'AzurePublicCloud'
  'AzureUSGovernment'
  'AzureUSGovernmentDoD'
  'AzureChinaCloud'
])
param azureCloud string = ''

// ---------------------------------------------------------------- names (empty: generated)

@description('Resource group; default rg-{environmentName}.')
param resourceGroupName string = ''

@description('User-assigned managed identity the function app runs as.')
param identityName string = ''

@description('Log Analytics workspace behind Application Insights.')
param logAnalyticsName string = ''

@description('Application Insights component.')
param applicationInsightsName string = ''

@description('Storage account for the Functions host, the deployment package and the registration locks (3-24 lowercase letters and digits).')
param storageAccountName string = ''

@description('Key Vault that holds each registration\'s Client ID, Tenant ID and Client Secret (3-24 characters).')
param keyVaultName string = ''

@description('Flex Consumption plan.')
param appServicePlanName string = ''

@description('Function app (its host name is {name}.azurewebsites.net).')
param functionAppName string = ''

@description('Event Grid system topic of the vault.')
param eventGridSystemTopicName string = ''

@description('Event Grid subscription that sends SecretNearExpiry/SecretExpired to secret_near_expiry (created after deploy by infra/hooks/postdeploy.sh).')
param eventSubscriptionName string = ''

@description('The Event Grid topic the app publishes its events to; default: generated.')
param eventGridTopicName string = ''

@description('The action group the alert rules notify; default: generated.')
param actionGroupName string = ''

@description('uniqueName of the multi-tenant provisioner app (vendor-hosted mode).')
param provisionerUniqueName string = ''

@description('Display name of the provisioner app; customer admins see it on the consent screen.')
param provisionerDisplayName string = ''

// ---------------------------------------------------------------- security switches

@description('Key Vault public network access. Disabled needs a private endpoint and VNet integration, which this template does not create.')
@allowed([
  'Enabled'
  'Disabled'
])
param keyVaultPublicNetworkAccess string = 'Enabled'

@description('Grant the identity Policy.Read.All so new secrets are clamped to the tenant\'s app management policy up front (without it the code degrades gracefully: a refused lifetime is retried shorter).')
param grantPolicyReadAll bool = true

@description('Create the multi-tenant provisioner app and its federated credential (vendor-hosted mode).')
param deployProvisioner bool = false

// ---------------------------------------------------------------- capacity

@description('Flex Consumption scale-out ceiling (also the cost ceiling).')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

// ---------------------------------------------------------------- app behaviour (defaults are shared/settings.py's)

@description('NAME_PREFIX: prefix of app unique names and Key Vault secret names.')
@minLength(2)
@maxLength(24)
param namePrefix string = 'tenant-onboarding'

@description('ROTATION_SCHEDULE: NCRONTAB schedule of the rotation sweep (each run a bounded invocation).')
param rotationSchedule string = '0 */10 * * * *'

@description('SWEEP_INVOCATION_SECONDS: most a sweep invocation works before leaving the rest to the next (below host.json\'s functionTimeout, 300 s).')
@minValue(1)
@maxValue(280)
param sweepInvocationSeconds int = 240

@description('SWEEP_FULL_PASS_HOURS: a full pass over Key Vault\'s listings begins this long after the last began.')
@minValue(1)
@maxValue(720)
param sweepFullPassHours int = 168

@description('SWEEP_REACH_HOURS: every registration is acted on within this of its due time, else an alert.')
@minValue(1)
@maxValue(720)
param sweepReachHours int = 24

@description('ALLOW_HOME_TENANT: with the provisioner (vendor-hosted), may callers also manage apps in this home tenant.')
param allowHomeTenant bool = false

@description('CONNECTOR_TRUST_SUBJECT: object id of the vendor backend\'s managed identity that the connector apps trust (credentialType federated); empty: the federated type is off.')
param connectorTrustSubject string = ''

@description('CONNECTOR_TRUST_ISSUER: issuer of that identity\'s tokens; empty: this deployment\'s own tenant (the usual case).')
param connectorTrustIssuer string = ''

@description('SECRET_LIFETIME_DAYS: lifetime of a new client secret, clamped to the tenant\'s policy.')
@minValue(1)
@maxValue(3650)
param secretLifetimeDays int = 180

@description('MAX_SECRET_LIFETIME_DAYS: the longest lifetime a caller may ask for.')
@minValue(1)
@maxValue(3650)
param maxSecretLifetimeDays int = 730

@description('CERTIFICATE_VALIDITY_MONTHS: validity of a new client certificate, clamped to the tenant\'s policy.')
@minValue(1)
@maxValue(24)
param certificateValidityMonths int = 12

@description('VERIFY_TIMEOUT_SECONDS: how long to wait for a new secret to work before answering 202.')
@minValue(1)
@maxValue(600)
param verifyTimeoutSeconds int = 60

@description('REPLICATION_TIMEOUT_SECONDS: how long to wait for Entra replication before answering 202.')
@minValue(1)
@maxValue(600)
param replicationTimeoutSeconds int = 60

@description('ORPHAN_GRACE_MINUTES: age after which a minted but never stored secret is removed.')
@minValue(0)
@maxValue(10080)
param orphanGraceMinutes int = 30

@description('LOCK_WAIT_SECONDS: how long a request waits for another operation on the same registration.')
@minValue(0)
@maxValue(300)
param lockWaitSeconds int = 30

@description('ROTATION_WINDOW_DAYS: rotate a secret this many days before it expires.')
@minValue(1)
@maxValue(365)
param rotationWindowDays int = 30

@description('ROTATION_GRACE_HOURS: keep the previous secret this long after a rotation.')
@minValue(0)
@maxValue(720)
param rotationGraceHours int = 48

@description('ROTATION_CONCURRENCY: registrations rotated at once by a sweep.')
@minValue(1)
@maxValue(64)
param rotationConcurrency int = 8

@description('ROTATION_RATE_PER_SECOND: most rotations a sweep starts a second (Graph\'s and Key Vault\'s write limits).')
@minValue(0)
@maxValue(1000)
param rotationRatePerSecond int = 10

@description('ALERT_EMAILS: comma-separated email addresses the alert rules notify (infra/app/alerts.json).')
param alertEmails string = ''

// ---------------------------------------------------------------- derived names

// Bicep's names of the clouds (environment().name: AzureCloud, AzureUSGovernment, AzureChinaCloud) to the app's.
var cloudOfEnvironment = {
  AzureCloud: 'AzurePublicCloud'
  AzureUSGovernment: 'AzureUSGovernment'
  AzureChinaCloud: 'AzureChinaCloud'
}
var deployedCloud = !empty(azureCloud) ? azureCloud : cloudOfEnvironment[environment().name]
// What the postprovision hook needs of the cloud (shared/domain/clouds.py has the same values and their sources):
// its Microsoft Graph root, and the audience a federated credential trusts there.
var graphOfCloud = {
  AzurePublicCloud: 'https://graph.microsoft.com'
  AzureUSGovernment: 'https://graph.microsoft.us'
  AzureUSGovernmentDoD: 'https://dod-graph.microsoft.us'
  AzureChinaCloud: 'https://microsoftgraph.chinacloudapi.cn'
}
var federationAudienceOfCloud = {
  AzurePublicCloud: 'api://AzureADTokenExchange'
  AzureUSGovernment: 'api://AzureADTokenExchangeUSGov'
  AzureUSGovernmentDoD: 'api://AzureADTokenExchangeUSGov'
  AzureChinaCloud: 'api://AzureADTokenExchangeChina'
}

var abbrs = loadJsonContent('abbreviations.json')
var resourceToken = toLower(uniqueString(subscription().id, environmentName, location))
var tags = {
  'azd-env-name': environmentName
}

var rgName = !empty(resourceGroupName) ? resourceGroupName : '${abbrs.resourcesResourceGroups}${environmentName}'
var idName = !empty(identityName) ? identityName : '${abbrs.managedIdentityUserAssignedIdentities}${resourceToken}'
var logName = !empty(logAnalyticsName) ? logAnalyticsName : '${abbrs.operationalInsightsWorkspaces}${resourceToken}'
var appiName = !empty(applicationInsightsName) ? applicationInsightsName : '${abbrs.insightsComponents}${resourceToken}'
var stName = !empty(storageAccountName) ? storageAccountName : '${abbrs.storageStorageAccounts}${resourceToken}'
var kvName = !empty(keyVaultName) ? keyVaultName : '${abbrs.keyVaultVaults}${resourceToken}'
var planName = !empty(appServicePlanName) ? appServicePlanName : '${abbrs.webServerFarms}${resourceToken}'
var funcName = !empty(functionAppName) ? functionAppName : '${abbrs.webSitesFunctions}${resourceToken}'
var topicName = !empty(eventGridSystemTopicName) ? eventGridSystemTopicName : '${abbrs.eventGridSystemTopics}${resourceToken}'
var egTopicName = !empty(eventGridTopicName) ? eventGridTopicName : '${abbrs.eventGridDomainsTopics}${resourceToken}'
var agName = !empty(actionGroupName) ? actionGroupName : '${abbrs.insightsActionGroups}${resourceToken}'
var subscriptionName = !empty(eventSubscriptionName) ? eventSubscriptionName : '${abbrs.eventGridEventSubscriptions}secret-near-expiry'
var provisionerName = !empty(provisionerUniqueName) ? provisionerUniqueName : '${namePrefix}-provisioner-${resourceToken}'
var provisionerTitle = !empty(provisionerDisplayName) ? provisionerDisplayName : 'Tenant onboarding provisioner (${environmentName})'
// Flex Consumption reads the code package from this container, with the identity.
var deploymentContainerName = 'app-package-${take(toLower(funcName), 32)}-${take(resourceToken, 7)}'

// ---------------------------------------------------------------- resources

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: rgName
  location: location
  tags: tags
}

module identity 'app/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: {
    name: idName
    location: location
    tags: tags
  }
}

module monitoring 'app/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: {
    logAnalyticsName: logName
    applicationInsightsName: appiName
    location: location
    tags: tags
  }
}

module events 'app/events.bicep' = {
  name: 'events'
  scope: rg
  params: {
    name: egTopicName
    location: location
    tags: tags
  }
}

module alerts 'app/alerts.bicep' = {
  name: 'alerts'
  scope: rg
  params: {
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    actionGroupName: agName
    tags: tags
    alertEmails: alertEmails
  }
}

module storage 'app/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: {
    name: stName
    location: location
    tags: tags
    deploymentContainerName: deploymentContainerName
  }
}

module keyVault 'app/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: {
    name: kvName
    location: location
    tags: tags
    publicNetworkAccess: keyVaultPublicNetworkAccess
    systemTopicName: topicName
  }
}

module rbac 'app/rbac.bicep' = {
  name: 'rbac'
  scope: rg
  params: {
    principalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    keyVaultName: keyVault.outputs.name
    applicationInsightsName: monitoring.outputs.applicationInsightsName
    eventGridTopicName: events.outputs.name
  }
}

module graph 'app/graph.bicep' = {
  name: 'graph'
  scope: rg
  params: {
    grantPolicyReadAll: grantPolicyReadAll
    deployProvisioner: deployProvisioner
    provisionerUniqueName: provisionerName
    provisionerDisplayName: provisionerTitle
  }
}

module functionApp 'app/function.bicep' = {
  name: 'function'
  scope: rg
  params: {
    name: funcName
    planName: planName
    location: location
    tags: tags
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    azureCloud: deployedCloud
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    eventGridTopicEndpoint: events.outputs.endpoint
    deploymentContainerName: deploymentContainerName
    applicationInsightsConnectionString: monitoring.outputs.connectionString
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    keyVaultUrl: keyVault.outputs.uri
    homeTenantId: tenant().tenantId
    provisionerClientId: graph.outputs.provisionerClientId
    allowHomeTenant: allowHomeTenant
    connectorTrustSubject: connectorTrustSubject
    connectorTrustIssuer: connectorTrustIssuer
    namePrefix: namePrefix
    rotationSchedule: rotationSchedule
    secretLifetimeDays: secretLifetimeDays
    maxSecretLifetimeDays: maxSecretLifetimeDays
    certificateValidityMonths: certificateValidityMonths
    verifyTimeoutSeconds: verifyTimeoutSeconds
    replicationTimeoutSeconds: replicationTimeoutSeconds
    orphanGraceMinutes: orphanGraceMinutes
    lockWaitSeconds: lockWaitSeconds
    rotationWindowDays: rotationWindowDays
    rotationGraceHours: rotationGraceHours
    rotationConcurrency: rotationConcurrency
    rotationRatePerSecond: rotationRatePerSecond
    sweepInvocationSeconds: sweepInvocationSeconds
    sweepFullPassHours: sweepFullPassHours
    sweepReachHours: sweepReachHours
  }
  // The host must reach its storage and the vault as soon as it starts.
  dependsOn: [
    rbac
  ]
}

// ---------------------------------------------------------------- outputs (azd stores them in .azure/{env}/.env)

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
// The hooks pin every Azure CLI call to the subscription this template went into, whatever `az account
// set` says.
output AZURE_SUBSCRIPTION_ID string = subscription().subscriptionId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = functionApp.outputs.name
output AZURE_FUNCTION_APP_HOST string = functionApp.outputs.defaultHostName
output AZURE_KEY_VAULT_NAME string = keyVault.outputs.name
output AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME string = keyVault.outputs.systemTopicName
output AZURE_EVENT_SUBSCRIPTION_NAME string = subscriptionName
output KEY_VAULT_URL string = keyVault.outputs.uri
output HOME_TENANT_ID string = tenant().tenantId
output MANAGED_IDENTITY_CLIENT_ID string = identity.outputs.clientId
output MANAGED_IDENTITY_PRINCIPAL_ID string = identity.outputs.principalId
output PROVISIONER_CLIENT_ID string = graph.outputs.provisionerClientId
// Read by infra/hooks/postprovision.sh, which grants the identity its Graph roles and writes the
// provisioner's federated credential after provisioning, retrying until Entra has replicated the new
// objects (app/graph.bicep says why this is not done here).
output GRAPH_APP_ROLES string = join(graph.outputs.graphRoles, ' ')
output PROVISIONER_UNIQUE_NAME string = graph.outputs.provisionerUniqueName
output GRAPH_URL string = graphOfCloud[deployedCloud]
output FEDERATION_AUDIENCE string = federationAudienceOfCloud[deployedCloud]
output FEDERATED_CREDENTIAL_ISSUER string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
