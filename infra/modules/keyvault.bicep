// Key Vault for credential values (castiel/backends/keyvault.py), RBAC-authorised.
param name string
param location string
param tags object

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
  location: location
  tags: tags
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

output name string = vault.name
output uri string = vault.properties.vaultUri
