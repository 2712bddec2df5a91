// The function app on a Flex Consumption plan (Linux, Python 3.11), running as the user-assigned
// identity: code package, host storage and telemetry are all reached with it, so no key or connection
// string with a secret is stored anywhere.

param name string
param planName string
param location string
param tags object

@description('Resource id of the user-assigned managed identity.')
param identityId string

@description('Client id of the user-assigned managed identity.')
param identityClientId string

@description('Blob endpoint of the Functions storage account (https://{account}.blob.core.windows.net/).')
param blobEndpoint string
@description('The queue endpoint of the same account: the event outbox and the sweep\'s work queue (AzureWebJobsStorage__queueServiceUri).')
param queueEndpoint string
@description('The Event Grid topic the app publishes its events to (EVENT_GRID_TOPIC_ENDPOINT).')
param eventGridTopicEndpoint string

param deploymentContainerName string
param applicationInsightsConnectionString string
param maximumInstanceCount int
param instanceMemoryMB int

// What the code reads (shared/settings.py SETTINGS); main.bicep documents each.
param keyVaultUrl string
param homeTenantId string
@description('AZURE_CLOUD: the cloud every endpoint and token audience of the app follows (shared/domain/clouds.py).')
param azureCloud string
param provisionerClientId string
param allowHomeTenant bool
param connectorTrustSubject string
param connectorTrustIssuer string
param namePrefix string
param rotationSchedule string
param secretLifetimeDays int
param maxSecretLifetimeDays int
param certificateValidityMonths int
param verifyTimeoutSeconds int
param replicationTimeoutSeconds int
param orphanGraceMinutes int
param lockWaitSeconds int
param rotationWindowDays int
param rotationGraceHours int
param rotationConcurrency int
param rotationRatePerSecond int
param sweepInvocationSeconds int
param sweepFullPassHours int
param sweepReachHours int

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: zone redundancy on Flex Consumption is offered in some regions only; a zone outage only delays work that the timer sweep then catches up on.
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the HTTP API and the Event Grid webhook must be reachable; every route needs a function key (AuthLevel.FUNCTION) and the webhook the Event Grid system key.
  // checkov:skip=CKV_AZURE_17: callers authenticate with function keys, and Event Grid cannot present a client certificate.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales to zero; an always-ready instance would bill around the clock for a low-volume API.
  // checkov:skip=CKV_AZURE_213: every route needs a function key, so there is no anonymous path to probe, and a probe would keep instances from scaling to zero.
  name: name
  location: location
  // azd deploys the `api` service of azure.yaml to the resource carrying this tag.
  tags: union(tags, {
    'azd-service-name': 'api'
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      // Exactly the settings the app reads, plus the Functions platform's; nothing else (tests/infra compares
      // these names with shared/settings.py). No value is a secret, so no Key Vault reference is needed: the
      // Application Insights connection string alone cannot send telemetry (local authentication is off).
      // Not set, so their defaults apply: GRAPH_BASE_URL, AUTHORITY_HOST, RESOURCE_MANAGER_URL,
      // LOG_ANALYTICS_URL (AZURE_CLOUD's own), TLS_CA_BUNDLE,
      // KEY_VAULT_VERIFY_CHALLENGE_RESOURCE (local stand-in only), AzureWebJobsStorage (a connection string
      // with a key: local development only) and AzureWebJobsStorage__accountName (the blobServiceUri form
      // is used instead: it also works outside the public cloud). Flex Consumption rejects
      // FUNCTIONS_WORKER_RUNTIME and FUNCTIONS_EXTENSION_VERSION: the runtime is set in functionAppConfig.
      appSettings: [
        // Functions platform: host storage through the identity, telemetry through the identity.
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: applicationInsightsConnectionString
        }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identityClientId};Authorization=AAD'
        }
        // Read by both the host and the code (the registration locks live in the same account).
        {
          name: 'AzureWebJobsStorage__blobServiceUri'
          value: blobEndpoint
        }
        {
          name: 'AzureWebJobsStorage__queueServiceUri' // the host's too: the rotation worker's queue trigger
          value: queueEndpoint
        }
        // The code.
        {
          name: 'EVENT_GRID_TOPIC_ENDPOINT'
          value: eventGridTopicEndpoint
        }
        {
          name: 'KEY_VAULT_URL'
          value: keyVaultUrl
        }
        {
          name: 'AZURE_CLOUD'
          value: azureCloud
        }
        {
          name: 'HOME_TENANT_ID'
          value: homeTenantId
        }
        {
          name: 'MANAGED_IDENTITY_CLIENT_ID'
          value: identityClientId
        }
        {
          name: 'PROVISIONER_CLIENT_ID'
          value: provisionerClientId
        }
        {
          name: 'ALLOW_HOME_TENANT'
          value: string(allowHomeTenant)
        }
        {
          name: 'CONNECTOR_TRUST_SUBJECT'
          value: connectorTrustSubject
        }
        {
          name: 'CONNECTOR_TRUST_ISSUER'
          value: connectorTrustIssuer
        }
        {
          name: 'NAME_PREFIX'
          value: namePrefix
        }
        {
          name: 'ROTATION_SCHEDULE'
          value: rotationSchedule
        }
        {
          name: 'SECRET_LIFETIME_DAYS'
          value: string(secretLifetimeDays)
        }
        {
          name: 'MAX_SECRET_LIFETIME_DAYS'
          value: string(maxSecretLifetimeDays)
        }
        {
          name: 'CERTIFICATE_VALIDITY_MONTHS'
          value: string(certificateValidityMonths)
        }
        {
          name: 'VERIFY_TIMEOUT_SECONDS'
          value: string(verifyTimeoutSeconds)
        }
        {
          name: 'REPLICATION_TIMEOUT_SECONDS'
          value: string(replicationTimeoutSeconds)
        }
        {
          name: 'ORPHAN_GRACE_MINUTES'
          value: string(orphanGraceMinutes)
        }
        {
          name: 'LOCK_WAIT_SECONDS'
          value: string(lockWaitSeconds)
        }
        {
          name: 'ROTATION_WINDOW_DAYS'
          value: string(rotationWindowDays)
        }
        {
          name: 'ROTATION_GRACE_HOURS'
          value: string(rotationGraceHours)
        }
        {
          name: 'ROTATION_CONCURRENCY'
          value: string(rotationConcurrency)
        }
        {
          name: 'ROTATION_RATE_PER_SECOND'
          value: string(rotationRatePerSecond)
        }
        {
          name: 'SWEEP_INVOCATION_SECONDS'
          value: string(sweepInvocationSeconds)
        }
        {
          name: 'SWEEP_FULL_PASS_HOURS'
          value: string(sweepFullPassHours)
        }
        {
          name: 'SWEEP_REACH_HOURS'
          value: string(sweepReachHours)
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No publishing with user names and passwords: azd deploys with an Entra token.
resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output name string = site.name
output id string = site.id
output defaultHostName string = site.properties.defaultHostName
