"""Writes ``cosmos-containers.json``, the Cosmos DB containers ``modules/cosmos.bicep`` creates, from the code.

Every container of ``castiel.models.CONTAINER_PARTITION_KEYS`` with its partition key, its default TTL and the
indexing policy ``castiel.backends.cosmos_query.indexing_policy`` gives it (the composite indexes its ordered
queries need). Bicep cannot run Python, so the JSON is checked in; ``tests/unit/infra/test_drift.py`` fails when it
no longer matches. Regenerate with ``.venv/bin/python infra/cosmos_containers.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from castiel.backends.cosmos_query import indexing_policy
from castiel.models import CONTAINER_PARTITION_KEYS, WebhookAudit

TTL_ON = -1
"""TTL enabled without a default: only documents that carry a ``ttl`` expire (tombstones, pending creates)."""
DEFAULT_TTLS = {WebhookAudit.container: WebhookAudit.model_fields["ttl"].default}
"""Containers whose documents all expire: the webhook audit after 30 days (DESIGN §4)."""
TARGET = Path(__file__).with_name("cosmos-containers.json")


def containers() -> list[dict[str, Any]]:
    """The containers as ``modules/cosmos.bicep`` reads them."""
    return [
        {
            "name": name,
            "partitionKey": f"/{key}",
            "defaultTtl": DEFAULT_TTLS.get(name, TTL_ON),
            "indexingPolicy": indexing_policy(name),
        }
        for name, key in CONTAINER_PARTITION_KEYS.items()
    ]


def render() -> str:
    """The file's text."""
    return json.dumps(containers(), indent=2) + "\n"


if __name__ == "__main__":
    TARGET.write_text(render())
