// The vault that holds each registration's Client ID, Tenant ID and Client Secret, and the Event Grid
// system topic that publishes its SecretNearExpiry / SecretExpired events. The subscription that sends
// them to the function (eventgrid.bicep) is created after the code is deployed: its webhook needs the
// function's Event Grid system key, which exists only once the host has loaded the function.

param name string
param location string
param tags object

@allowed([
  'Enabled'
  'Disabled'
])
param publicNetworkAccess string = 'Enabled'

param systemTopicName string

@description('Days a deleted secret stays recoverable (7-90). The code recovers soft-deleted names on re-onboarding.')
@minValue(7)
@maxValue(90)
param softDeleteRetentionInDays int = 90

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_189: public network access is the keyVaultPublicNetworkAccess parameter; Disabled needs a private endpoint and VNet integration this template does not create. Access is Entra-only (RBAC authorization).
  // checkov:skip=CKV_AZURE_109: follows keyVaultPublicNetworkAccess (Deny when Disabled); Flex Consumption outbound addresses are not fixed, so an IP allow-list cannot name the function app.
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    // Azure RBAC only: no access policies. The identity's role is assigned in rbac.bicep.
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    // Irreversible once on: a deleted secret can never be purged before its retention ends.
    enablePurgeProtection: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: publicNetworkAccess == 'Enabled' ? 'Allow' : 'Deny'
    }
  }
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  properties: {
    source: vault.id
    topicType: 'Microsoft.KeyVault.vaults'
  }
}

output name string = vault.name
output id string = vault.id
output uri string = vault.properties.vaultUri
output systemTopicName string = systemTopic.name
