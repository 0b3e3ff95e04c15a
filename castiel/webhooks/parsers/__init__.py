"""One parser per provider's payloads, each a pure ``WebhookDelivery -> ParsedDelivery`` function (see ``events``)."""
