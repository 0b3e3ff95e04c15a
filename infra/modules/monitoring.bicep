// Log Analytics and a workspace-based App Insights that accepts Entra-authenticated telemetry only.
param token string
param location string
param tags object

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-castiel-${token}'
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-castiel-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true // the connection string alone cannot send: the app's identity (Monitoring Metrics Publisher) must
  }
}

output appInsightsName string = appInsights.name
output connectionString string = appInsights.properties.ConnectionString
