// The user-assigned managed identity the function app runs as: host storage, Key Vault, Microsoft Graph,
// Application Insights, and (vendor-hosted mode) the provisioner app's federated credential all trust it.

param name string
param location string
param tags object

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
