// Azure Managed Redis, the successor of the retiring Azure Cache for Redis: TLS on port 10000, access keys off,
// Entra ID only. The app connects with redis-entraid as its identity (REDIS_URL holds no credential). The Enterprise
// cluster policy exposes one endpoint whose proxy routes each command to its shard, so the app's plain (not
// cluster-aware) client works; it still refuses multi-key commands across slots, which is why every multi-key Lua
// call keeps its keys in one hash slot.
param name string
param location string
param tags object
param skuName string
@description('Identities given the data access policy: the app, and the operator when there is one.')
param principalIds array

resource cluster 'Microsoft.Cache/redisEnterprise@2025-04-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: skuName }
  properties: {
    minimumTlsVersion: '1.2'
    highAvailability: 'Enabled'
  }
}

resource database 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' = {
  parent: cluster
  name: 'default'
  properties: {
    clientProtocol: 'Encrypted'
    port: 10000
    clusteringPolicy: 'EnterpriseCluster'
    evictionPolicy: 'NoEviction' // rate-limit windows, locks and idempotency markers must not be evicted early
    accessKeysAuthentication: 'Disabled'
  }
}

resource accessPolicies 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = [
  for principalId in principalIds: {
    parent: database
    name: principalId
    properties: {
      accessPolicyName: 'default'
      user: { objectId: principalId }
    }
  }
]

output url string = 'rediss://${cluster.properties.hostName}:10000'
