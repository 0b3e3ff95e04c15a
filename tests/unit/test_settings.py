from pathlib import Path

import pytest

from castiel.errors import ConfigError
from castiel.settings import Settings, load_settings


def test_defaults_match_the_design(data_dir: Path) -> None:
    settings = load_settings()
    assert settings.cosmos_database == "castiel"
    assert settings.service_bus_queue == "sync-inbound"
    assert settings.service_bus_queue_outbound == "sync-outbound"
    assert settings.sync_batch_size == 100
    assert settings.sync_max_retries == 3
    assert settings.token_expiry_threshold_minutes == 420
    assert settings.data_dir == data_dir
    assert not (settings.uses_cosmos)
    assert not (settings.uses_service_bus)
    assert not (settings.uses_key_vault)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SYNC_BATCH_SIZE", "zero"),
        ("SYNC_BATCH_SIZE", "0"),
        ("SYNC_MAX_RETRIES", "-1"),
        ("TOKEN_EXPIRY_THRESHOLD_MINUTES", "soon"),
        ("REDIS_URL", "localhost:6379"),
        ("COSMOS_ENDPOINT", "not-a-url"),
        ("RATE_LIMIT_OVERRIDES", "{not json"),
    ],
)
def test_an_invalid_value_stops_start_up_naming_the_variable(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError, match=variable):
        load_settings()


@pytest.mark.parametrize("variable", ["ServiceBusConnection", "SERVICE_BUS_CONNECTION_STRING"])
def test_either_service_bus_variable_selects_service_bus(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(
        variable, "Endpoint=sb://example.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=v"
    )
    assert load_settings().uses_service_bus


def test_secrets_stay_out_of_the_repr(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSMOS_KEY", "super-secret-cosmos-key")
    monkeypatch.setenv("ServiceBusConnection", "Endpoint=sb://x/;SharedAccessKey=super-secret-sas")
    text = repr(Settings())
    assert "super-secret" not in text


def _variables() -> set[str]:
    from pydantic import AliasChoices

    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
    return names


def test_every_variable_is_in_the_functions_settings_example_and_the_readme() -> None:
    import json

    root = Path(__file__).parents[2]
    example = json.loads((root / "local.settings.json.example").read_text())
    listed = set(example["Values"]) | set(example.get("UnsetByDefault", {}))
    readme = (root / "README.md").read_text()
    assert _variables() - listed == set()
    assert {name for name in _variables() if f"`{name}`" not in readme} == set()
