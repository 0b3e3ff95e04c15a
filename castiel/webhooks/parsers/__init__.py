"""One parser per provider's payloads, each a pure ``Delivery -> ParsedDelivery`` function (see ``events``)."""
