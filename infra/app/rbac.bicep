// Azure role assignments of the function's managed identity: the narrowest built-in role per resource,
// each scoped to that one resource. Ids are Microsoft's built-in role definition ids (the same in every
// subscription; see learn.microsoft.com/azure/role-based-access-control/built-in-roles); tests/infra
// checks each id against the role name in its comment.

param principalId string
param storageAccountName string
param keyVaultName string
param applicationInsightsName string
param eventGridTopicName string

// Key Vault Secrets Officer. The code sets secrets (new versions), reads their values (verification,
// rotation), lists them and their versions (the sweep), updates their tags, deletes them (offboarding)
// and recovers soft-deleted names (re-onboarding). Key Vault Secrets User only reads; Key Vault
// Administrator would add keys, certificates and purge rights the code never uses. Purge is moot anyway:
// purge protection is on.
var keyVaultSecretsOfficer = 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // Key Vault Secrets Officer

// Key Vault Certificates Officer. Client certificates (credentialType 'certificate') are Key Vault
// certificates: the code creates them (Key Vault makes the key pair), reads them and their versions,
// imports a proven staging certificate as the new version (rotation), updates their tags, lists them
// (the sweep) and deletes them (offboarding). Their PKCS#12 is read through the backing secret, which the
// Secrets Officer role above covers. Key Vault Certificate User only reads.
var keyVaultCertificatesOfficer = 'a4417e6f-fecd-4de8-b567-7b0420556985' // Key Vault Certificates Officer

// Storage Blob Data Owner: what the Functions host needs on AzureWebJobsStorage when it connects with an
// identity (read/write blobs, create containers: timer schedule monitor, host keys, leases); the code's
// registration leases, the sweep's checkpoint and due index (shared/adapters/sweep_storage.py) and Flex
// Consumption's deployment package live in the same account. The app has no table or blob triggers, so no table
// role is granted.
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // Storage Blob Data Owner

// Storage Queue Data Contributor: two queues in the same account: the event outbox (shared/adapters/outbox.py) and
// the sweep's work queue (shared/adapters/sweep_storage.py), whose trigger, the rotation worker, the host runs with
// this identity (the role the Functions docs list for a queue trigger, plus creating the queue and its poison queue).
var storageQueueDataContributor = '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // Storage Queue Data Contributor

// EventGrid Data Sender: publish to the app's own topic (events.bicep), and nothing else on it.
var eventGridDataSender = 'd5a91429-5739-47e2-a06b-3470a27159e7' // EventGrid Data Sender

// Monitoring Metrics Publisher: Application Insights has local authentication off, so the app sends
// telemetry with its identity (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb' // Monitoring Metrics Publisher

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource topic 'Microsoft.EventGrid/topics@2022-06-15' existing = {
  name: eventGridTopicName
}

resource vaultSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultSecretsOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource vaultCertificatesOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, keyVaultCertificatesOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', keyVaultCertificatesOfficer)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, principalId, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource storageQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, principalId, storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageQueueDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

resource topicSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(topic.id, principalId, eventGridDataSender)
  scope: topic
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventGridDataSender)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
