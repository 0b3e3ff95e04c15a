// Least privilege for the app's identity: exactly the roles it uses, on the narrowest scope that works.
// (Azure Managed Redis grants its data access policy in modules/redis.bicep.)
param appPrincipalId string
@description('An operator (person or pipeline) who also needs the queues and secrets; empty for none.')
param operatorPrincipalId string
param storageAccountName string
param serviceBusName string
param queueNames array
param cosmosAccountName string
param databaseName string
param keyVaultName string
param appInsightsName string

// Built-in role definition ids (Azure RBAC).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'
  serviceBusDataReceiver: '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}
// Cosmos DB Built-in Data Contributor: a Cosmos SQL role definition, granted through sqlRoleAssignments.
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'
// Every queue gets both: each worker receives from its queue and sends retry copies back to it; the scheduler and
// the receiver send to the other one.
var queueRoles = [roles.serviceBusDataSender, roles.serviceBusDataReceiver]
var queueGrants = flatten(map(range(0, length(queueNames)), i => map(queueRoles, role => { queue: i, role: role })))
var principals = empty(operatorPrincipalId) ? [appPrincipalId] : [appPrincipalId, operatorPrincipalId]

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' existing = {
  name: serviceBusName
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [
  for queueName in queueNames: {
    parent: serviceBus
    name: queueName
  }
]

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' existing = {
  name: cosmosAccountName
}

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// The deployment package container, and the host's own containers (timer leases, keys) in the same account: the
// account is the app's alone, so its scope is the account.
resource appStorageBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource queueAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for grant in queueGrants: {
    name: guid(serviceBus.id, queueNames[grant.queue], appPrincipalId, grant.role)
    scope: queues[grant.queue]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
      principalId: appPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

resource operatorQueueAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for grant in queueGrants: if (!empty(operatorPrincipalId)) {
    name: guid(serviceBus.id, queueNames[grant.queue], operatorPrincipalId, grant.role)
    scope: queues[grant.queue]
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', grant.role)
      principalId: operatorPrincipalId
    }
  }
]

resource secretsAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in principals: {
    name: guid(keyVault.id, principalId, roles.keyVaultSecretsOfficer)
    scope: keyVault
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
      principalId: principalId
    }
  }
]

resource telemetryAccess 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// Scoped to the one database, not the account.
resource cosmosAccess 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [
  for principalId in principals: {
    parent: cosmos
    name: guid(cosmos.id, principalId, cosmosDataContributor)
    properties: {
      roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
      principalId: principalId
      scope: '${cosmos.id}/dbs/${databaseName}'
    }
  }
]
