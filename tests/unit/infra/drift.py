"""Where ``infra/`` and the code must agree, as a list of problems (empty: they agree).

The Bicep compiler cannot run here, so the checks read the files: the containers JSON the Cosmos module loads, and
the few Bicep declarations the code depends on, written in a shape these patterns find (one ``key: value`` a line).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices

from castiel.backends.cosmos_query import indexing_policy
from castiel.models import CONTAINER_PARTITION_KEYS, WebhookAudit
from castiel.settings import Settings

TTL_ON = -1

ROLES = {
    "storageBlobDataOwner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # deployment package + host storage
    "serviceBusDataSender": "69a216fc-b8fb-44d8-bc22-1f3c2cd27a39",  # scheduler, receiver, retry copies
    "serviceBusDataReceiver": "4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0",  # the two queue triggers
    "keyVaultSecretsOfficer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",  # credentials: read, write, delete, purge
    "monitoringMetricsPublisher": "3913510d-42f4-4e42-8a64-420c390055eb",  # App Insights with local auth off
}
"""Every Azure RBAC role the app's identity needs (built-in role definition ids), and no other."""
COSMOS_DATA_CONTRIBUTOR = "00000000-0000-0000-0000-000000000002"

EXCLUDED_SETTINGS = {
    "COSMOS_KEY": "Entra ID only in Azure (the account has local auth off)",
    "ServiceBusConnection": "a connection string; Azure connects as the identity (…__fullyQualifiedNamespace)",
    "SERVICE_BUS_CONNECTION_STRING": "another name for ServiceBusConnection",
    "CASTIEL_DATA_DIR": "the embedded backends' directory; nothing is embedded in Azure",
    "CASTIEL_SHUTDOWN_GRACE_SECONDS": "castiel serve only",
    "GOOGLE_CERTS_URL": "its default is Google's endpoint; only the sandbox changes it",
    "SYNC_BATCH_SIZE": "tuning: the default applies until an operator sets it",
    "SYNC_MAX_RETRIES": "tuning: the default applies until an operator sets it",
    "SYNC_STUCK_TIMEOUT_MINUTES": "tuning: the default applies until an operator sets it",
    "SYNC_TOMBSTONE_RETENTION_DAYS": "tuning: the default applies until an operator sets it",
    "SYNC_PROGRESS_INTERVAL_SECONDS": "tuning: the default applies until an operator sets it",
    "SYNC_CREATE_CONFIRM_SECONDS": "tuning: the default applies until an operator sets it",
    "TOKEN_EXPIRY_THRESHOLD_MINUTES": "tuning: the default matches the 6-hourly timer",
    "TOKEN_REFRESH_CONCURRENCY": "tuning: the default applies until an operator sets it",
    "RATE_LIMIT_OVERRIDES": "per-tenant limits an operator adds when needed",
    "RATE_LIMIT_EXPECTED_INSTANCES": "tuning: set it to the instances sharing a limit",
}
"""Settings ``castiel/settings.py`` reads that the Bicep deliberately leaves unset, and why."""

PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__accountName": "the Functions host",
    "AzureWebJobsStorage__credential": "the Functions host",
    "AzureWebJobsStorage__clientId": "the Functions host",
    "ServiceBusConnection__credential": "the Service Bus extension",
    "ServiceBusConnection__clientId": "the Service Bus extension",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "the host and the Azure Monitor exporter",
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "the Python worker",
    "AZURE_CLIENT_ID": "azure-identity's DefaultAzureCredential",
}
"""App settings the Bicep sets for the platform and libraries, not for ``Settings``."""


def read(root: Path, path: str) -> str:
    return (root / path).read_text()


def setting_names() -> dict[str, tuple[str, ...]]:
    """Each field of ``Settings`` and the environment names it reads."""
    names: dict[str, tuple[str, ...]] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, str):
            names[field] = (alias,)
        elif isinstance(alias, AliasChoices):
            names[field] = tuple(str(choice) for choice in alias.choices)
    return names


def expected_containers() -> list[dict[str, Any]]:
    """What the containers must be, from the code alone."""
    ttl = WebhookAudit.model_fields["ttl"].default
    return [
        {
            "name": name,
            "partitionKey": f"/{key}",
            "defaultTtl": ttl if name == WebhookAudit.container else TTL_ON,
            "indexingPolicy": indexing_policy(name),
        }
        for name, key in CONTAINER_PARTITION_KEYS.items()
    ]


def container_problems(root: Path) -> list[str]:
    declared = {c["name"]: c for c in json.loads(read(root, "infra/cosmos-containers.json"))}
    problems = []
    for wanted in expected_containers():
        name = wanted["name"]
        have = declared.pop(name, None)
        if have is None:
            problems.append(f"container {name} (models.CONTAINER_PARTITION_KEYS) is not in infra")
            continue
        for key in ("partitionKey", "defaultTtl"):
            if have.get(key) != wanted[key]:
                problems.append(f"container {name}: {key} is {have.get(key)!r} in infra, {wanted[key]!r} in the code")
        composites = have.get("indexingPolicy", {}).get("compositeIndexes")
        if composites != wanted["indexingPolicy"]["compositeIndexes"]:
            problems.append(f"container {name}: compositeIndexes differ from cosmos_query.indexing_policy()")
        elif have.get("indexingPolicy") != wanted["indexingPolicy"]:
            problems.append(f"container {name}: indexingPolicy differs from cosmos_query.indexing_policy()")
    problems += [f"container {name} is in infra but not in the code" for name in declared]
    cosmos = read(root, "infra/modules/cosmos.bicep")
    for usage in (
        "loadJsonContent('../cosmos-containers.json')",
        "paths: [container.partitionKey]",
        "defaultTtl: container.defaultTtl",
        "indexingPolicy: container.indexingPolicy",
    ):
        if usage not in cosmos:
            problems.append(f"modules/cosmos.bicep no longer has {usage}")
    return problems


def queue_problems(root: Path) -> list[str]:
    main = read(root, "infra/main.bicep")
    problems = []
    defaults = Settings.model_fields
    for key, field in (("inbound", "service_bus_queue"), ("outbound", "service_bus_queue_outbound")):
        found = re.search(rf"^\s+{key}: '([^']+)'", main, re.MULTILINE)
        wanted = defaults[field].default
        if found is None or found.group(1) != wanted:
            problems.append(f"queue {key}: infra declares {found and found.group(1)!r}, the code uses {wanted!r}")
    for var, field in (("maxDeliveryCount", "max_delivery_count"), ("lockDurationSeconds", "lock_duration_seconds")):
        found = re.search(rf"^var {var} = (\d+)", main, re.MULTILINE)
        wanted = defaults[field].default
        if found is None or float(found.group(1)) != float(wanted):
            problems.append(f"{var}: infra declares {found and found.group(1)}, the code's default is {wanted}")
    servicebus = read(root, "infra/modules/servicebus.bicep")
    for line in (
        "maxDeliveryCount: maxDeliveryCount",
        "lockDuration: 'PT${lockDurationSeconds}S'",
        "requiresDuplicateDetection: true",
        "deadLetteringOnMessageExpiration: true",
    ):
        if line not in servicebus:
            problems.append(f"modules/servicebus.bicep: the queues lack {line}")
    return problems


def app_settings(root: Path) -> set[str]:
    app = read(root, "infra/modules/functionapp.bicep")
    block = app[app.index("name: 'appsettings'") :]
    block = block[block.index("properties: {") : block.index("\n    }\n")]
    return set(re.findall(r"^\s+(\w+):", block, re.MULTILINE))


def setting_problems(root: Path) -> list[str]:
    declared = app_settings(root)
    problems = []
    read_by_code: set[str] = set()
    for names in setting_names().values():
        read_by_code.update(names)
        if not (set(names) & declared) and not any(name in EXCLUDED_SETTINGS for name in names):
            problems.append(f"app setting {' / '.join(names)} (castiel/settings.py) is neither in infra nor excluded")
    for name in sorted(declared - read_by_code - PLATFORM_SETTINGS.keys()):
        problems.append(f"app setting {name} in infra is read by nothing")
    for name in re.findall(r"%(\w+)%", read(root, "function_app.py")):
        if name not in declared:
            problems.append(f"binding expression %{name}% (function_app.py) has no app setting in infra")
    return problems


def role_problems(root: Path) -> list[str]:
    access = read(root, "infra/modules/access.bicep")
    block = access[access.index("var roles = {") :]
    block = block[: block.index("}")]
    declared = dict(re.findall(r"(\w+): '([0-9a-f-]{36})'", block))
    problems = []
    for name, guid in ROLES.items():
        if declared.get(name) != guid:
            problems.append(f"role {name} ({guid}) is not granted")
        elif f"roles.{name}" not in access[access.index("var roles = {") + len(block) :]:
            problems.append(f"role {name} is declared but never assigned")
    problems += [
        f"role {name} ({guid}) is granted but not needed" for name, guid in declared.items() if name not in ROLES
    ]
    if f"var cosmosDataContributor = '{COSMOS_DATA_CONTRIBUTOR}'" not in access or "sqlRoleAssignments" not in access:
        problems.append("Cosmos DB Built-in Data Contributor is not granted through sqlRoleAssignments")
    redis = read(root, "infra/modules/redis.bicep")
    # EnterpriseCluster: the app's redis.asyncio.Redis cannot follow the OSS cluster policy's shard redirects.
    for line in (
        "'Microsoft.Cache/redisEnterprise@",
        "port: 10000",
        "accessKeysAuthentication: 'Disabled'",
        "clusteringPolicy: 'EnterpriseCluster'",
    ):
        if line not in redis:
            problems.append(f"modules/redis.bicep: Azure Managed Redis lacks {line}")
    if "accessPolicyAssignments" not in redis:
        problems.append("modules/redis.bicep: the identity has no Redis access policy assignment")
    for path in sorted((root / "infra").rglob("*.bicep")):
        if "listKeys(" in path.read_text():
            problems.append(f"{path.relative_to(root)} reads an access key (listKeys)")
    return problems


def emulator_problems(root: Path) -> list[str]:
    """The Service Bus emulator's queues (``infra/emulators/servicebus-config.json``) against the code."""
    config = json.loads(read(root, "infra/emulators/servicebus-config.json"))
    (namespace,) = config["UserConfig"]["Namespaces"]
    declared = {queue["Name"]: queue["Properties"] for queue in namespace["Queues"]}
    defaults = Settings.model_fields
    wanted_names = {defaults["service_bus_queue"].default, defaults["service_bus_queue_outbound"].default}
    problems = []
    if set(declared) != wanted_names:
        problems.append(f"emulator queues {sorted(declared)} are not the code's {sorted(wanted_names)}")
    for name, properties in declared.items():
        if properties.get("MaxDeliveryCount") != defaults["max_delivery_count"].default:
            problems.append(f"emulator queue {name}: MaxDeliveryCount differs from SERVICE_BUS_MAX_DELIVERY_COUNT")
        if _seconds(properties.get("LockDuration", "")) != defaults["lock_duration_seconds"].default:
            problems.append(f"emulator queue {name}: LockDuration differs from SERVICE_BUS_LOCK_DURATION_SECONDS")
        if not (properties.get("RequiresDuplicateDetection") and properties.get("DeadLetteringOnMessageExpiration")):
            problems.append(f"emulator queue {name}: duplicate detection and dead-lettering on expiry must be on")
    return problems


def _seconds(duration: str) -> float | None:
    """An ISO 8601 duration of minutes and seconds (``PT1M``, ``PT90S``, ``PT1M30S``) in seconds."""
    found = re.fullmatch(r"PT(?:(\d+)M)?(?:(\d+)S)?", duration)
    return None if found is None else int(found.group(1) or 0) * 60.0 + int(found.group(2) or 0)


def problems(root: Path) -> list[str]:
    """Every disagreement between ``root``'s infra/ (and function_app.py) and the code."""
    found = container_problems(root) + queue_problems(root) + setting_problems(root) + role_problems(root)
    return found + emulator_problems(root)
