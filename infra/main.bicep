// Castiel sync in Azure (DESIGN.md §9), in the shape of the Azure-Samples Flex Consumption templates:
// `azd up` provisions this and deploys the app (azure.yaml at the repository root); without azd,
//   az deployment sub create -l <region> -f infra/main.bicep -p infra/main.parameters.json -p environmentName=<name> location=<region>
//   func azure functionapp publish <AZURE_FUNCTION_APP_NAME output>
//
// One user-assigned identity is the app's only credential: storage (shared keys off), Service Bus, Cosmos DB,
// Key Vault, Azure Managed Redis and App Insights (local auth off everywhere) all accept it, each with the least
// role the app needs (modules/access.bicep). No app setting holds a secret.

targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name: the resource group is rg-<name>, and every resource name derives from it.')
param environmentName string

@minLength(1)
@description('Region; it must offer the Flex Consumption plan and Azure Managed Redis.')
@metadata({ azd: { type: 'location' } })
param location string

@description('Object id of the person or pipeline that operates Castiel (queue tooling, secrets, the Key Vault contract tests); empty for none.')
param principalId string = ''

@description('Most instances the Function App scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 100

@description('Memory per instance, in MB.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Azure Managed Redis SKU: Balanced_B0 for trials, Balanced_B1 and up for production.')
param redisSkuName string = 'Balanced_B1'

var tags = { 'azd-env-name': environmentName }
var token = toLower(uniqueString(subscription().id, environmentName, location))
var databaseName = 'castiel'
// DESIGN §4 queues; the app reads them from SERVICE_BUS_QUEUE / SERVICE_BUS_QUEUE_OUTBOUND (function_app.py binds
// its triggers to %SERVICE_BUS_QUEUE% and %SERVICE_BUS_QUEUE_OUTBOUND%).
var queues = {
  inbound: 'sync-inbound'
  outbound: 'sync-outbound'
}
// What the queues enforce, and the settings that tell the app (the embedded queue obeys the same two).
var maxDeliveryCount = 10
var lockDurationSeconds = 60

resource rg 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: 'rg-${environmentName}'
  location: location
  tags: tags
}

module identity 'modules/identity.bicep' = {
  name: 'identity'
  scope: rg
  params: { name: 'id-castiel-${token}', location: location, tags: tags }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  scope: rg
  params: { token: token, location: location, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  scope: rg
  params: { name: 'stcastiel${take(token, 15)}', location: location, tags: tags }
}

module serviceBus 'modules/servicebus.bicep' = {
  name: 'servicebus'
  scope: rg
  params: {
    name: 'sb-castiel-${token}'
    location: location
    tags: tags
    queueNames: [queues.inbound, queues.outbound]
    maxDeliveryCount: maxDeliveryCount
    lockDurationSeconds: lockDurationSeconds
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  scope: rg
  params: { name: 'cosmos-castiel-${token}', location: location, tags: tags, databaseName: databaseName }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'keyvault'
  scope: rg
  params: { name: take('kv-castiel-${token}', 24), location: location, tags: tags }
}

module redis 'modules/redis.bicep' = {
  name: 'redis'
  scope: rg
  params: {
    name: 'redis-castiel-${token}'
    location: location
    tags: tags
    skuName: redisSkuName
    principalIds: empty(principalId) ? [identity.outputs.principalId] : [identity.outputs.principalId, principalId]
  }
}

module access 'modules/access.bicep' = {
  name: 'access'
  scope: rg
  params: {
    appPrincipalId: identity.outputs.principalId
    operatorPrincipalId: principalId
    storageAccountName: storage.outputs.name
    serviceBusName: serviceBus.outputs.name
    queueNames: [queues.inbound, queues.outbound]
    cosmosAccountName: cosmos.outputs.name
    databaseName: databaseName
    keyVaultName: keyVault.outputs.name
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module app 'modules/functionapp.bicep' = {
  name: 'functionapp'
  scope: rg
  params: {
    name: 'func-castiel-${token}'
    planName: 'plan-castiel-${token}'
    location: location
    tags: union(tags, { 'azd-service-name': 'api' })
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appInsightsConnectionString: monitoring.outputs.connectionString
    serviceBusNamespace: serviceBus.outputs.fullyQualifiedNamespace
    inboundQueue: queues.inbound
    outboundQueue: queues.outbound
    maxDeliveryCount: maxDeliveryCount
    lockDurationSeconds: lockDurationSeconds
    cosmosEndpoint: cosmos.outputs.endpoint
    databaseName: databaseName
    keyVaultUrl: keyVault.outputs.uri
    redisUrl: redis.outputs.url
  }
  // The app's first start resolves every identity-based connection, so its roles come first.
  dependsOn: [access]
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output AZURE_RESOURCE_GROUP string = rg.name
output AZURE_FUNCTION_APP_NAME string = app.outputs.name
output WEBHOOK_BASE_URL string = '${app.outputs.url}/webhooks'
output KEY_VAULT_URL string = keyVault.outputs.uri
output COSMOS_ENDPOINT string = cosmos.outputs.endpoint
output SERVICE_BUS_NAMESPACE string = serviceBus.outputs.fullyQualifiedNamespace
output APPLICATIONINSIGHTS_NAME string = monitoring.outputs.appInsightsName
