// The Event Grid custom topic the app publishes its events to (CloudEvents 1.0, docs/events.md). Local (access
// key and SAS) authentication is off: the app publishes with its identity, which holds EventGrid Data Sender on
// this topic only (rbac.bicep). The vendor's backend subscribes to it (a webhook or an Event Grid trigger).

param name string
param location string
param tags object

resource topic 'Microsoft.EventGrid/topics@2022-06-15' = {
  // checkov:skip=CKV_AZURE_193: Flex Consumption's outbound addresses are not fixed and the app has no VNet here, so a private endpoint or IP rule would shut the app out; publishing takes an Entra token with EventGrid Data Sender (local auth is off).
  name: name
  location: location
  tags: tags
  // Its own identity, for what the vendor's subscriptions may need to deliver with (a dead-letter container, an
  // authenticated endpoint); it holds no role until a subscription asks for one.
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    inputSchema: 'CloudEventSchemaV1_0'
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
  }
}

output name string = topic.name
output endpoint string = topic.properties.endpoint
