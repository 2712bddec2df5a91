// Azure Monitor alert rules on the product's audit events in Application Insights (customEvents named
// `audit.<operation>`, their fields as customDimensions: shared/adapters/telemetry.py), and the action group
// they notify. The rules are data (alerts.json) so a test checks every query's event
// names, dimensions and values against the events the code really emits (tests/unit/test_alerts.py): a rename
// breaks that test, not the alert.

param applicationInsightsName string
param actionGroupName string
param tags object

@description('Comma-separated email addresses the alerts go to (ALERT_EMAILS); empty: the rules fire with no receiver.')
param alertEmails string = ''

var rules = loadJsonContent('alerts.json')
var emails = empty(alertEmails) ? [] : split(replace(alertEmails, ' ', ''), ',')

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: actionGroupName
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'onboarding'
    enabled: true
    emailReceivers: [for (email, i) in emails: {
      name: 'email-${i}'
      emailAddress: email
      useCommonAlertSchema: true
    }]
  }
}

// https://learn.microsoft.com/azure/templates/microsoft.insights/scheduledqueryrules: a log search alert on the
// component, one alert per value of each dimension (so each tenant and integration alerts on its own).
resource rule 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for r in rules: {
  name: '${actionGroupName}-${r.name}'
  location: resourceGroup().location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: r.displayName
    description: r.description
    severity: r.severity
    enabled: true
    scopes: [
      applicationInsights.id
    ]
    evaluationFrequency: r.evaluationFrequency
    windowSize: r.windowSize
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: r.query
          timeAggregation: 'Count'
          operator: r.operator
          threshold: r.threshold
          dimensions: [for d in r.dimensions: {
            name: d
            operator: 'Include'
            values: [
              '*'
            ]
          }]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        actionGroup.id
      ]
    }
  }
}]

output actionGroupId string = actionGroup.id
