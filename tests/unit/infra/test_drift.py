"""infra/ declares what the code needs: containers, partition keys, TTLs and composite indexes, both queues, every
app setting, every role. Each check also fails on a copy of infra/ that disagrees."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.unit.infra.drift import problems

ROOT = Path(__file__).parents[3]


def test_infra_agrees_with_the_code() -> None:
    assert problems(ROOT) == []


def test_the_checked_in_containers_are_what_the_generator_writes() -> None:
    import runpy

    generator = runpy.run_path(str(ROOT / "infra" / "cosmos_containers.py"))
    assert (ROOT / "infra" / "cosmos-containers.json").read_text() == generator["render"]()


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "infra", tmp_path / "infra", ignore=shutil.ignore_patterns("salesforce", "__pycache__"))
    shutil.copy(ROOT / "function_app.py", tmp_path / "function_app.py")
    return tmp_path


def edit(root: Path, path: str, change: Callable[[str], str]) -> None:
    target = root / path
    before = target.read_text()
    after = change(before)
    assert after != before, f"the mutation changed nothing in {path}"
    target.write_text(after)


def rename_container(text: str) -> str:
    containers = json.loads(text)
    for container in containers:
        if container["name"] == "sync-tasks":
            container["name"] = "tasks"
    return json.dumps(containers)


def drop_scheduler_index(text: str) -> str:
    containers = json.loads(text)
    for container in containers:
        if container["name"] == "sync-tasks":
            container["indexingPolicy"]["compositeIndexes"] = container["indexingPolicy"]["compositeIndexes"][:1]
    return json.dumps(containers)


def repartition_audit(text: str) -> str:
    return text.replace('"/registrationId"', '"/tenantId"')


MUTATIONS: list[tuple[str, str, Callable[[str], str], str]] = [
    ("a container renamed", "infra/cosmos-containers.json", rename_container, "container sync-tasks"),
    ("a partition key changed", "infra/cosmos-containers.json", repartition_audit, "webhook-audit: partitionKey"),
    ("a composite index dropped", "infra/cosmos-containers.json", drop_scheduler_index, "compositeIndexes"),
    (
        "a queue renamed",
        "infra/main.bicep",
        lambda t: t.replace("outbound: 'sync-outbound'", "outbound: 'outbound'"),
        "queue outbound",
    ),
    (
        "max delivery count changed",
        "infra/main.bicep",
        lambda t: t.replace("var maxDeliveryCount = 10", "var maxDeliveryCount = 5"),
        "maxDeliveryCount",
    ),
    (
        "an app setting dropped",
        "infra/modules/functionapp.bicep",
        lambda t: t.replace("      KEY_VAULT_URL: keyVaultUrl\n", ""),
        "KEY_VAULT_URL",
    ),
    (
        "a binding expression without its setting",
        "function_app.py",
        lambda t: t.replace("%SERVICE_BUS_QUEUE_OUTBOUND%", "%OUTBOUND_QUEUE%"),
        "%OUTBOUND_QUEUE%",
    ),
    (
        "a role dropped",
        "infra/modules/access.bicep",
        lambda t: t.replace("  serviceBusDataSender: '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39'\n", ""),
        "serviceBusDataSender",
    ),
    (
        "Data Owner instead of least privilege",
        "infra/modules/access.bicep",
        lambda t: t.replace(
            "  keyVaultSecretsOfficer:",
            "  serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419'\n  keyVaultSecretsOfficer:",
        ),
        "serviceBusDataOwner",
    ),
    (
        "an emulator queue renamed",
        "infra/emulators/servicebus-config.json",
        lambda t: t.replace('"sync-inbound"', '"inbound"'),
        "emulator queues",
    ),
    (
        "Redis access keys on",
        "infra/modules/redis.bicep",
        lambda t: t.replace("accessKeysAuthentication: 'Disabled'", "accessKeysAuthentication: 'Enabled'"),
        "accessKeysAuthentication",
    ),
    (
        "Redis behind the OSS cluster policy, which the app's client cannot follow",
        "infra/modules/redis.bicep",
        lambda t: t.replace("clusteringPolicy: 'EnterpriseCluster'", "clusteringPolicy: 'OSSCluster'"),
        "clusteringPolicy",
    ),
]


@pytest.mark.parametrize(("path", "change", "named"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_the_drift_check_fails_on_a_copy_that_disagrees(
    copy: Path, path: str, change: Callable[[str], str], named: str
) -> None:
    assert problems(copy) == []
    edit(copy, path, change)
    found = problems(copy)
    assert found
    assert any(named in problem for problem in found), found


def test_the_readmes_deploy_path_is_what_infra_declares() -> None:
    readme = (ROOT / "README.md").read_text()
    deploying = readme[readme.index("## Deploying") : readme.index("## Observability")]
    main = (ROOT / "infra" / "main.bicep").read_text()
    outputs = set(re.findall(r"^output (\w+) ", main, re.MULTILINE))
    for name in ("AZURE_FUNCTION_APP_NAME", "WEBHOOK_BASE_URL", "COSMOS_ENDPOINT", "KEY_VAULT_URL"):
        assert f"`{name}`" in deploying
        assert name in outputs
    parameters = (ROOT / "infra" / "main.parameters.json").read_text()
    for variable in re.findall(r"AZURE_[A-Z_]+", parameters):
        assert variable in ("AZURE_ENV_NAME", "AZURE_LOCATION", "AZURE_PRINCIPAL_ID")
    assert "AZURE_PRINCIPAL_ID" in deploying
    assert "host: function" in (ROOT / "azure.yaml").read_text()
    assert "'azd-service-name': 'api'" in main
