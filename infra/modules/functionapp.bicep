// The Function App on Flex Consumption (Python 3.11), running as the user-assigned identity.
param name string
param planName string
param location string
param tags object
param identityId string
param identityClientId string
param storageAccountName string
param deploymentContainerUrl string
param maximumInstanceCount int
param instanceMemoryMB int
param appInsightsConnectionString string
param serviceBusNamespace string
param inboundQueue string
param outboundQueue string
param maxDeliveryCount int
param lockDurationSeconds int
param cosmosEndpoint string
param databaseName string
param keyVaultUrl string
param redisUrl string

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: {
    reserved: true
  }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identityId}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identityId }
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

  // Flex Consumption takes the worker runtime from functionAppConfig: FUNCTIONS_WORKER_RUNTIME is not set.
  resource settings 'config' = {
    name: 'appsettings'
    properties: {
      // The Functions host's own connections, as the identity.
      AzureWebJobsStorage__accountName: storageAccountName
      AzureWebJobsStorage__credential: 'managedidentity'
      AzureWebJobsStorage__clientId: identityClientId
      ServiceBusConnection__fullyQualifiedNamespace: serviceBusNamespace
      ServiceBusConnection__credential: 'managedidentity'
      ServiceBusConnection__clientId: identityClientId
      // Telemetry: the Python worker installs the Azure Monitor distro and continues the host's traces.
      APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
      APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identityClientId};Authorization=AAD'
      PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: 'true'
      // DefaultAzureCredential (Cosmos DB, Key Vault, Service Bus sends, Redis) picks the user-assigned identity.
      AZURE_CLIENT_ID: identityClientId
      // castiel/settings.py
      SERVICE_BUS_QUEUE: inboundQueue
      SERVICE_BUS_QUEUE_OUTBOUND: outboundQueue
      SERVICE_BUS_MAX_DELIVERY_COUNT: string(maxDeliveryCount)
      SERVICE_BUS_LOCK_DURATION_SECONDS: string(lockDurationSeconds)
      COSMOS_ENDPOINT: cosmosEndpoint
      COSMOS_DATABASE: databaseName
      KEY_VAULT_URL: keyVaultUrl
      REDIS_URL: redisUrl
      REDIS_AUTH: 'entra_id' // Azure Managed Redis takes the identity's Entra token, no access key
    }
  }
}

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
