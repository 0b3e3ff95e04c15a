// A serverless Cosmos DB account, Entra ID only, with the database and every container of DESIGN §4.
// The containers, their partition keys, TTLs and indexing policies (the composite indexes the code's ordered
// queries need) come from ../cosmos-containers.json, written from the code by ../cosmos_containers.py: data-plane
// RBAC cannot create containers or change their policies, so they are declared here.
param name string
param location string
param tags object
param databaseName string

var containers = loadJsonContent('../cosmos-containers.json')

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: name
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    capabilities: [{ name: 'EnableServerless' }]
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    locations: [{ locationName: location, failoverPriority: 0, isZoneRedundant: false }]
    disableLocalAuth: true // COSMOS_KEY stays unset in Azure
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
    parent: account::database
    name: container.name
    properties: {
      resource: {
        id: container.name
        partitionKey: { paths: [container.partitionKey], kind: 'Hash', version: 2 }
        defaultTtl: container.defaultTtl
        indexingPolicy: container.indexingPolicy
      }
    }
  }
]

output name string = account.name
output endpoint string = account.properties.documentEndpoint
