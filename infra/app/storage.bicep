// The Functions storage account: host state (timer schedule monitor, keys, leases), the Flex
// Consumption deployment package, and the registration locks (shared/adapters/locks.py). Reached only with the
// managed identity: shared keys are disabled, so no connection string with a key exists anywhere.

param name string
param location string
param tags object

@description('Blob container Flex Consumption deploys the code package to.')
param deploymentContainerName string

@description('Blob container of the per-registration leases; must equal CONTAINER in shared/adapters/locks.py.')
param locksContainerName string = 'tenant-onboarding-locks'

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_59: Flex Consumption without VNet integration reaches its storage over the public endpoint; shared keys are off, so only Entra-authorised principals get in.
  // checkov:skip=CKV_AZURE_35: as CKV_AZURE_59: without VNet integration the default action must be Allow (the function app has no fixed outbound address).
  // checkov:skip=CKV_AZURE_206: LRS on purpose: the account holds host state, short-lived leases and the code package, all re-creatable by `azd up`.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// The code creates it on first use too; creating it here means the first request does not have to.
resource locksContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: locksContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
output queueEndpoint string = storage.properties.primaryEndpoints.queue
