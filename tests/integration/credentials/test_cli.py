"""``castiel credentials`` on the embedded backends, the real Redis and the stand-in provider: metadata out, values
never; usage errors exit 2, runtime errors exit 1, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.cli import app
from castiel.models import Provider
from castiel.settings import BACKEND_SELECTORS
from tests.integration.cli.helpers import castiel, castiel_json, invoke
from tests.integration.credentials.conftest import CLIENT_ID, CLIENT_SECRET, StandIn
from tests.unit.credentials.keys import private_key_pem

SECRET = "zqCLIVALUEzq"


def add(*args: str) -> list[str]:
    """``castiel credentials add`` for connection ``gh`` of tenant ``acme``, then ``args``."""
    return ["credentials", "add", "--tenant", "acme", "--connection", "gh", *args]


@pytest.fixture
def cli(data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data directory on the session's Redis, with a GitHub connection ``gh`` of tenant ``acme``."""
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")
    return data_dir


def test_add_prints_metadata_with_its_id_and_never_the_value(cli: Path) -> None:
    added = castiel_json(*add("--type", "api_key", "--value", SECRET, "--id", "k1", "--rotation-days", "90"))
    assert added["id"] == "k1"
    assert added["credentialType"] == "api_key"
    assert added["rotation"] == {"intervalDays": 90, "warnBeforeDays": 14}
    assert SECRET not in json.dumps(added)
    (connection,) = castiel_json("connections", "list", "--json")
    assert connection["credentialId"] == "k1"


def test_show_json_carries_status_expiry_last_refresh_and_version(cli: Path) -> None:
    castiel(*add("--type", "bearer_token", "--value", SECRET, "--id", "b1"))
    shown = castiel_json("credentials", "show", "b1", "--json")
    assert {"status": "active", "expiresAt": None, "lastRefreshedAt": None, "version": 1}.items() <= shown.items()
    text = castiel("credentials", "show", "b1")
    assert "status: active" in text
    assert SECRET not in text
    (listed,) = castiel_json("credentials", "list", "--json")
    assert listed["id"] == "b1"
    assert "b1  bearer_token" in castiel("credentials", "list", "--tenant", "acme")


def test_a_value_from_stdin_stays_out_of_the_command_line(cli: Path) -> None:
    result = CliRunner().invoke(app, add("--type", "bearer_token", "--value", "-", "--id", "w1"), input=SECRET + "\n")
    assert result.exit_code == 0, result.output
    stored = json.loads((cli / "secrets.json").read_text())
    assert SECRET in json.dumps(stored)


def test_refresh_and_rotate_go_through_the_locked_path(cli: Path, oauth: StandIn, tmp_path: Path) -> None:
    grant = oauth.sandbox.issue("github", CLIENT_ID)
    fields = tmp_path / "grant.json"
    fields.write_text(
        json.dumps(
            {
                "access_token": grant.access_token,
                "refresh_token": grant.refresh_token,
                "expires_at": "2020-01-01T00:00:00Z",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "token_url": oauth.token_url(Provider.GITHUB),
            }
        )
    )
    added = castiel_json(*add("--type", "oauth2_authorization_code", "--from-file", str(fields)))
    assert added["refreshable"] is True

    refreshed = castiel_json("credentials", "refresh", added["id"])
    assert refreshed["version"] == 2
    assert refreshed["lastRefreshedAt"] is not None
    assert oauth.sandbox.calls()[grant.id] == 1
    output = castiel("credentials", "refresh", added["id"])
    assert grant.access_token not in output
    assert grant.refresh_token is not None
    assert grant.refresh_token not in output

    rotated = castiel_json("credentials", "rotate", added["id"], "--from-file", str(fields))
    assert rotated["version"] == 4


def test_remove_deletes_value_and_metadata_and_unlinks_the_connection(cli: Path) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    assert "removed k1" in castiel("credentials", "remove", "k1")
    assert castiel_json("credentials", "list", "--json") == []
    assert SECRET not in (cli / "secrets.json").read_text()
    (connection,) = castiel_json("connections", "list", "--json")
    assert "credentialId" not in connection


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--type", "api_key"], 2, "exactly one of --value and --from-file"),
        (["--type", "api_key", "--value", "v", "--from-file", "x.json"], 2, "--from-file"),
        (["--type", "basic_auth", "--value", SECRET], 2, "several fields"),
        (["--type", "password", "--value", SECRET], 2, "--type"),
        (["--type", "api_key", "--value", SECRET, "--id", "Not An Id"], 2, "not a valid id"),
        (["--type", "webhook_secret", "--value", SECRET], 2, "`castiel webhooks add --secret` creates it"),
    ],
)
def test_usage_errors_exit_2_and_store_nothing(cli: Path, args: list[str], code: int, message: str) -> None:
    result = invoke(*add(*args))
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    assert castiel_json("credentials", "list", "--json") == []


def test_a_value_file_with_a_bad_field_is_named_without_quoting_it(cli: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"username": "u", "pasword": SECRET}))
    result = invoke(*add("--type", "basic_auth", "--from-file", str(bad)))
    assert result.exit_code == 2
    assert "password: Field required" in result.output
    assert SECRET not in result.output
    not_json = tmp_path / "not.json"
    not_json.write_text("{")
    result = invoke(*add("--type", "basic_auth", "--from-file", str(not_json)))
    assert result.exit_code == 2
    assert "is not a JSON file" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["add", "--tenant", "acme", "--connection", "missing", "--type", "api_key", "--value", SECRET],
        ["show", "nope"],
        ["refresh", "nope"],
        ["rotate", "nope", "--value", SECRET],
        ["remove", "nope"],
    ],
)
def test_what_does_not_exist_is_a_runtime_error(cli: Path, args: list[str]) -> None:
    result = invoke("credentials", *args)
    assert result.exit_code == 1, result.output
    assert result.output.startswith("error:")
    assert "Traceback" not in result.output


def test_a_static_credential_refresh_is_refused_with_what_to_do(cli: Path) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    result = invoke("credentials", "refresh", "k1")
    assert result.exit_code == 2
    assert "castiel credentials rotate" in result.output


def test_adding_a_taken_id_is_refused_and_the_stored_value_stays(cli: Path) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    result = invoke(*add("--type", "api_key", "--value", "other-value", "--id", "k1"))
    assert result.exit_code == 1
    assert "already exists" in result.output
    assert "other-value" not in (cli / "secrets.json").read_text()
    assert castiel_json("credentials", "show", "k1", "--json")["version"] == 1


def stdin(args: list[str], text: str) -> tuple[int, str]:
    """Run ``castiel`` with ``text`` on stdin: its exit code and output."""
    result = CliRunner().invoke(app, args, input=text)
    return result.exit_code, result.output


def piped(args: list[str], data: bytes) -> subprocess.CompletedProcess[bytes]:
    """Run ``castiel`` in a real process with ``data`` on its stdin (click's test runner turns CRLF into LF)."""
    env = {name: value for name, value in os.environ.items() if name.upper() not in BACKEND_SELECTORS}
    return subprocess.run(
        [sys.executable, "-m", "castiel.cli", *args], input=data, capture_output=True, env=env, timeout=60, check=False
    )


def test_a_crlf_pasted_value_is_refused_exit_2_and_nothing_is_stored(cli: Path) -> None:
    done = piped(add("--type", "bearer_token", "--value", "-", "--id", "b1"), SECRET.encode() + b"\r\n")
    output = (done.stdout + done.stderr).decode()
    assert done.returncode == 2, output
    assert "token: Value error, must be printable ASCII" in output
    assert SECRET not in output
    assert castiel_json("credentials", "list", "--json") == []
    assert SECRET not in ((cli / "secrets.json").read_text() if (cli / "secrets.json").exists() else "")
    assert "credentialId" not in castiel_json("connections", "list", "--json")[0]


@pytest.mark.parametrize(
    ("credential_type", "fields", "message"),
    [
        ("api_key", {"api_key": SECRET, "header": "X Key"}, "header: Value error, is not a valid HTTP header name"),
        ("basic_auth", {"username": "u", "password": SECRET + "\r"}, "password: Value error, must not contain"),
        ("api_key", {"api_key": ""}, "api_key: Value error, must not be empty or blank"),
        ("basic_auth", {"username": "", "password": ""}, "username: Value error, must not be empty or blank"),
        ("service_account_key", {"client_email": "sa@x", "private_key": "-"}, "private_key is not"),
    ],
)
def test_a_value_file_that_cannot_be_sent_is_refused_exit_2(
    cli: Path, tmp_path: Path, credential_type: str, fields: dict[str, str], message: str
) -> None:
    value_file = tmp_path / "value.json"
    value_file.write_text(json.dumps(fields))
    result = invoke(*add("--type", credential_type, "--from-file", str(value_file)))
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert SECRET not in result.output
    assert castiel_json("credentials", "list", "--json") == []


def test_a_service_account_key_file_without_a_scope_is_refused_at_add(cli: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "sa.json"
    key_file.write_text(json.dumps({"client_email": "sa@p.iam.gserviceaccount.com", "private_key": private_key_pem()}))
    result = invoke(*add("--type", "service_account_key", "--from-file", str(key_file)))
    assert result.exit_code == 2, result.output
    assert "scope: required" in result.output
    assert castiel_json("credentials", "list", "--json") == []


@pytest.mark.parametrize(("given", "text"), [("-", ""), ("-", "\n"), (" ", ""), ("-", SECRET + "\x00\n")])
def test_rotate_refuses_an_empty_blank_or_unsendable_value_and_keeps_the_old_one(
    cli: Path, given: str, text: str
) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    code, output = stdin(["credentials", "rotate", "k1", "--value", given], text)
    assert code == 2, output
    assert "api_key: Value error" in output
    assert castiel_json("credentials", "show", "k1", "--json")["version"] == 1
    assert SECRET in (cli / "secrets.json").read_text()


def test_a_second_add_on_a_connection_is_refused_naming_rotate_and_the_first_keeps_it(cli: Path) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    result = invoke(*add("--type", "bearer_token", "--value", "other-value", "--id", "b2"))
    assert result.exit_code == 1, result.output
    assert "already has credential k1" in result.output
    assert "castiel credentials rotate k1" in result.output
    assert [item["id"] for item in castiel_json("credentials", "list", "--json")] == ["k1"]
    assert castiel_json("connections", "list", "--json")[0]["credentialId"] == "k1"


def test_a_connection_naming_an_unknown_credential_is_refused_and_not_stored(cli: Path) -> None:
    result = invoke(
        "connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh4", "--credential", "nosuchcred"
    )
    assert result.exit_code == 1, result.output
    assert "credential nosuchcred of tenant acme does not exist" in result.output
    assert [item["id"] for item in castiel_json("connections", "list", "--json")] == ["gh"]
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh5", "--credential", "k1")


def test_removing_a_connection_is_refused_while_its_credential_exists_and_cascade_removes_it(cli: Path) -> None:
    castiel(*add("--type", "api_key", "--value", SECRET, "--id", "k1"))
    result = invoke("connections", "remove", "gh")
    assert result.exit_code == 1, result.output
    assert "is used by credential(s) k1: remove them first, or pass --cascade" in result.output
    assert [item["id"] for item in castiel_json("credentials", "list", "--json")] == ["k1"]
    assert "and its credential(s) k1" in castiel("connections", "remove", "gh", "--cascade")
    assert castiel_json("credentials", "list", "--json") == []
    assert castiel_json("connections", "list", "--json") == []
    assert SECRET not in (cli / "secrets.json").read_text()


def test_list_json_prints_the_same_objects_as_show(cli: Path) -> None:
    castiel(*add("--type", "bearer_token", "--value", SECRET, "--id", "b1"))
    (listed,) = castiel_json("credentials", "list", "--json")
    assert listed == castiel_json("credentials", "show", "b1", "--json")
    assert listed["expiresAt"] is None
    assert listed["lastRefreshedAt"] is None


@pytest.mark.parametrize(
    ("flags", "shown"),
    [
        (["--authorize-url", "not a url"], "'not a url' is not an http(s) URL"),
        (["--token-url", "ftp://x"], "'ftp://x' is not an http(s) URL"),
        (["--client-file", "{client}"], "'ftp://token' is not an http(s) URL"),
    ],
)
def test_connect_refuses_an_endpoint_that_is_not_http_before_waiting(
    cli: Path, tmp_path: Path, flags: list[str], shown: str
) -> None:
    client = tmp_path / "client.json"
    client.write_text(json.dumps({"installed": {"client_id": "c", "token_uri": "ftp://token"}}))
    given = [flag.format(client=client) for flag in flags]
    identity = [] if "--client-file" in flags else ["--client-id", "c"]
    result = invoke(
        "credentials", "connect", "--tenant", "acme", "--connection", "gh", *identity, *given, "--no-browser"
    )
    assert result.exit_code == 2, result.output
    assert shown in result.output
    assert "Open this URL" not in result.output
