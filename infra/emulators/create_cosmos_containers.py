"""Creates the Cosmos DB database and containers of ``infra/cosmos-containers.json`` in the emulator, once.

The emulator starts empty and the app never creates containers (in Azure the Bicep does; data-plane RBAC cannot), so
this does what ``infra/modules/cosmos.bicep`` does, from the same file: partition keys, TTLs and indexing policies
with their composite indexes. It reads ``COSMOS_ENDPOINT``, ``COSMOS_KEY`` and ``COSMOS_DATABASE`` from
``local.settings.json``. Run from the repository root: ``.venv/bin/python infra/emulators/create_cosmos_containers.py``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from azure.cosmos import PartitionKey
from azure.cosmos.aio import CosmosClient

ROOT = Path(__file__).parents[2]


async def main() -> None:
    values = json.loads((ROOT / "local.settings.json").read_text())["Values"]
    containers = json.loads((ROOT / "infra" / "cosmos-containers.json").read_text())
    # The emulator serves a self-signed certificate; this script talks to it only.
    async with CosmosClient(values["COSMOS_ENDPOINT"], values["COSMOS_KEY"], connection_verify=False) as client:
        database = await client.create_database_if_not_exists(values["COSMOS_DATABASE"])
        for container in containers:
            await database.create_container_if_not_exists(
                container["name"],
                PartitionKey(container["partitionKey"]),
                default_ttl=container["defaultTtl"],
                indexing_policy=container["indexingPolicy"],
            )
            print(f"container {container['name']} ({container['partitionKey']})")


if __name__ == "__main__":
    asyncio.run(main())
