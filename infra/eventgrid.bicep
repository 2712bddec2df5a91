// Second stage, deployed by infra/hooks/postdeploy.sh after `azd deploy` (resource group scope): the Event
// Grid subscriptions that send the vault's SecretNearExpiry / SecretExpired (and the certificate kinds) events to the
// secret_near_expiry function (shared/entrypoints/rotation_api.py).
//
// Why a webhook, and why after the code: an Event Grid trigger is called at
//   https://{host}/runtime/webhooks/EventGrid?functionName={function}&code={eventgrid_extension system key}
// (learn.microsoft.com/azure/azure-functions/event-grid-how-tos, "Webhook endpoint URL" and "System key").
// That system key only exists once the host has loaded an Event Grid trigger, i.e. after the package is
// deployed, so this cannot be part of main.bicep's provisioning. Microsoft's Flex Consumption azd samples
// (Azure-Samples/functions-quickstart-*-azd-eventgrid-blob, scripts/post-up.sh) subscribe the same way: a
// WebHook endpoint carrying the extension's system key, created by a postdeploy hook. The AzureFunction
// endpoint type (resourceId {site}/functions/{name}) also needs the function to exist first, and those
// samples do not use it on Flex Consumption, so it is not used here (not verified against a live app).

@description('The function app (main.bicep output AZURE_FUNCTION_APP_NAME).')
param functionAppName string

@description('The vault\'s Event Grid system topic (main.bicep output AZURE_EVENT_GRID_SYSTEM_TOPIC_NAME).')
param systemTopicName string

@description('Name of the event subscription (main.bicep output AZURE_EVENT_SUBSCRIPTION_NAME).')
param eventSubscriptionName string

@description('Name suffix of the secrets rotation cares about (shared/entrypoints/rotation_api.py ignores every other name).')
param secretNameSuffix string = '-client-secret'

@description('Name suffix of the client certificates rotation cares about (shared/domain/registry.py, certificate_name).')
param certificateNameSuffix string = '-client-certificate'

// The Python v2 function name of the Event Grid trigger in shared/entrypoints/rotation_api.py.
var functionName = 'secret_near_expiry'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource secretNearExpiry 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: eventSubscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/EventGrid?functionName=${functionName}&code=${listKeys('${site.id}/host/default', '2024-04-01').systemKeys.eventgrid_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.SecretNearExpiry'
        'Microsoft.KeyVault.SecretExpired'
      ]
      subjectEndsWith: secretNameSuffix
    }
    // A missed event is caught by the timer sweep (ROTATION_SCHEDULE) anyway; retry for a day.
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

// The same for client certificates: Key Vault raises CertificateNearExpiry / CertificateExpired
// (https://learn.microsoft.com/azure/key-vault/general/event-grid-overview); the subject is the
// certificate's name, which ends with the registry's client-certificate suffix.
resource certificateNearExpiry 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: systemTopic
  name: '${eventSubscriptionName}-certificates'
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/EventGrid?functionName=${functionName}&code=${listKeys('${site.id}/host/default', '2024-04-01').systemKeys.eventgrid_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.KeyVault.CertificateNearExpiry'
        'Microsoft.KeyVault.CertificateExpired'
      ]
      subjectEndsWith: certificateNameSuffix
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
  }
}

output eventSubscriptionId string = secretNearExpiry.id
