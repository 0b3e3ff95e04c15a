// Castiel sync in Azure: everything DESIGN.md §9 names, connected by one managed identity.
//
//   az group create -n rg-castiel -l <region with Flex Consumption>
//   az deployment group create -g rg-castiel -f infra/main.bicep [-p operatorPrincipalId=$(az ad signed-in-user show --query id -o tsv)]
//   func azure functionapp publish <functionAppName output>
//
// The Function App reaches Storage, Service Bus, Cosmos DB, Key Vault and App Insights with its system-assigned
// identity, so no app setting holds a secret: the one key the app needs, Redis's, lives in Key Vault and the
// REDIS_URL app setting is a Key Vault reference.

targetScope = 'resourceGroup'

@description('Short lowercase name (letters, digits, hyphens) every resource name starts with.')
@minLength(3)
@maxLength(11)
param namePrefix string = 'castiel'

@description('Region; it must offer the Flex Consumption plan.')
param location string = resourceGroup().location

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Azure Cache for Redis tier: Basic has no replica and no SLA, Standard is the production minimum.')
@allowed(['Basic', 'Standard', 'Premium'])
param redisSkuName string = 'Standard'

@description('Object id of a person or pipeline that operates Castiel (secret and queue tooling, the Key Vault contract tests); empty for none.')
param operatorPrincipalId string = ''

var suffix = uniqueString(resourceGroup().id)
var databaseName = 'castiel'
var queueNames = ['sync-inbound', 'sync-outbound']
var deploymentContainerName = 'app-package'

// DESIGN §4: partition key per container; -1 turns TTL on without expiring anything unless a document says so.
var containers = [
  { name: 'connections', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'sync-tasks', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'sync-results', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'shards', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'external-ids', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'conflicts', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'webhooks', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'webhook-audit', partitionKey: '/registrationId', defaultTtl: 2592000 } // 30 days
  { name: 'credentials', partitionKey: '/tenantId', defaultTtl: -1 }
  { name: 'token-refresh-audit', partitionKey: '/tenantId', defaultTtl: -1 }
]

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}
var cosmosDataContributorRole = '00000000-0000-0000-0000-000000000002' // Cosmos DB Built-in Data Contributor

// ---------------------------------------------------------------- monitoring

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${namePrefix}-log-${suffix}'
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${namePrefix}-appi-${suffix}'
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true // telemetry is accepted only from Entra identities (the app's, below)
  }
}

// ---------------------------------------------------------------- storage: host state and the deployment package

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: take(toLower('st${replace(namePrefix, '-', '')}${suffix}'), 24)
  location: location
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    supportsHttpsTrafficOnly: true
  }

  resource blobService 'blobServices' = {
    name: 'default'

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
    }
  }
}

// ---------------------------------------------------------------- Service Bus

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: '${namePrefix}-sb-${suffix}'
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for queueName in queueNames: {
    parent: serviceBus
    name: queueName
    properties: {
      requiresDuplicateDetection: true // message ids are deterministic: a re-send inside the window is dropped
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      maxDeliveryCount: 10 // SERVICE_BUS_MAX_DELIVERY_COUNT
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      lockDuration: 'PT1M' // the host renews it while a function runs (host.json maxAutoLockRenewalDuration)
      maxSizeInMegabytes: 1024
    }
  }
]

// ---------------------------------------------------------------- Cosmos DB

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: '${namePrefix}-cosmos-${suffix}'
  location: location
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    capabilities: [{ name: 'EnableServerless' }]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    locations: [{ locationName: location, failoverPriority: 0, isZoneRedundant: false }]
    disableLocalAuth: true // Entra identities only: COSMOS_KEY stays unset in Azure
    minimalTlsVersion: 'Tls12'
  }

  resource database 'sqlDatabases' = {
    name: databaseName
    properties: {
      resource: { id: databaseName }
    }
  }
}

resource cosmosContainers 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = [
  for container in containers: {
    parent: cosmos::database
    name: container.name
    properties: {
      resource: {
        id: container.name
        partitionKey: { paths: [container.partitionKey], kind: 'Hash', version: 2 }
        defaultTtl: container.defaultTtl
      }
    }
  }
]

// ---------------------------------------------------------------- Key Vault

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: take('${namePrefix}-kv-${suffix}', 24)
  location: location
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    // Purge protection stays off so that deleting a credential can purge it and its name can be reused
    // (castiel/backends/keyvault.py). Turning it on is irreversible; deletes then keep names for the retention.
  }
}

// ---------------------------------------------------------------- Azure Cache for Redis

resource redis 'Microsoft.Cache/redis@2023-08-01' = {
  name: '${namePrefix}-redis-${suffix}'
  location: location
  properties: {
    sku: { name: redisSkuName, family: redisSkuName == 'Premium' ? 'P' : 'C', capacity: 1 }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
  }
}

// The access key goes into Key Vault, not into an app setting; uriComponent because keys contain '/', '+' and '='.
resource redisUrlSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: keyVault
  name: 'redis-url'
  properties: {
    value: 'rediss://:${uriComponent(redis.listKeys().primaryKey)}@${redis.properties.hostName}:${redis.properties.sslPort}/0'
    contentType: 'text/uri-list'
  }
}

// ---------------------------------------------------------------- Function App (Flex Consumption)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: '${namePrefix}-plan-${suffix}'
  location: location
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: {
    reserved: true
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: '${namePrefix}-func-${suffix}'
  location: location
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      minTlsVersion: '1.2'
    }
  }
  dependsOn: [storage::blobService::deploymentContainer]
}

// ---------------------------------------------------------------- role assignments of the app's identity

resource appStorageBlob 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appStorageQueue 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appStorageTable 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(serviceBus.id, functionApp.id, roles.serviceBusDataOwner)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource appKeyVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, functionApp.id, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Cosmos DB data-plane roles are Cosmos resources of their own, not Azure RBAC role assignments.
resource appCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = {
  parent: cosmos
  name: guid(cosmos.id, functionApp.id, cosmosDataContributorRole)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributorRole}'
    principalId: functionApp.identity.principalId
    scope: cosmos.id
  }
}

// ---------------------------------------------------------------- app settings

// A child resource, so that it is written after the role assignments: the REDIS_URL Key Vault reference and the
// identity-based connections then resolve on the app's first start. Flex Consumption takes the worker runtime from
// functionAppConfig, so FUNCTIONS_WORKER_RUNTIME must not be set here.
resource appSettings 'Microsoft.Web/sites/config@2024-04-01' = {
  parent: functionApp
  name: 'appsettings'
  properties: {
    AzureWebJobsStorage__accountName: storage.name
    APPLICATIONINSIGHTS_CONNECTION_STRING: appInsights.properties.ConnectionString
    APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
    ServiceBusConnection__fullyQualifiedNamespace: '${serviceBus.name}.servicebus.windows.net'
    SERVICE_BUS_QUEUE: queueNames[0]
    SERVICE_BUS_QUEUE_OUTBOUND: queueNames[1]
    SERVICE_BUS_MAX_DELIVERY_COUNT: '10'
    COSMOS_ENDPOINT: cosmos.properties.documentEndpoint
    COSMOS_DATABASE: databaseName
    KEY_VAULT_URL: keyVault.properties.vaultUri
    REDIS_URL: '@Microsoft.KeyVault(SecretUri=${redisUrlSecret.properties.secretUri})'
  }
  dependsOn: [appStorageBlob, appStorageQueue, appStorageTable, appTelemetry, appServiceBus, appKeyVault, appCosmos]
}

// ---------------------------------------------------------------- optional operator access

resource operatorKeyVault 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(keyVault.id, operatorPrincipalId, roles.keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
    principalId: operatorPrincipalId
  }
}

resource operatorServiceBus 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(serviceBus.id, operatorPrincipalId, roles.serviceBusDataOwner)
  scope: serviceBus
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.serviceBusDataOwner)
    principalId: operatorPrincipalId
  }
}

// ---------------------------------------------------------------- outputs

output functionAppName string = functionApp.name
output webhookBaseUrl string = 'https://${functionApp.properties.defaultHostName}/webhooks'
output keyVaultUrl string = keyVault.properties.vaultUri
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output serviceBusNamespace string = '${serviceBus.name}.servicebus.windows.net'
output appInsightsName string = appInsights.name
