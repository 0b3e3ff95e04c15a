// The namespace and the two queues of DESIGN §4, each with its dead-letter queue. Local (SAS) auth is off.
param name string
param location string
param tags object
param queueNames array
param maxDeliveryCount int
param lockDurationSeconds int

resource namespace 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard' } // duplicate detection and scheduled messages need Standard
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [
  for queueName in queueNames: {
    parent: namespace
    name: queueName
    properties: {
      maxDeliveryCount: maxDeliveryCount // SERVICE_BUS_MAX_DELIVERY_COUNT: a crashing message dead-letters after this
      lockDuration: 'PT${lockDurationSeconds}S' // SERVICE_BUS_LOCK_DURATION_SECONDS; the host renews it while a function runs
      requiresDuplicateDetection: true // message ids are deterministic: a re-send inside the window is dropped
      duplicateDetectionHistoryTimeWindow: 'PT10M'
      deadLetteringOnMessageExpiration: true
      defaultMessageTimeToLive: 'P14D'
      maxSizeInMegabytes: 1024
    }
  }
]

output name string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
