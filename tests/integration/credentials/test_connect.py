"""``castiel credentials connect`` end to end over loopback: the CLI in its own process, the stand-in provider's
authorize and token endpoints, and this test as the person's browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from castiel.backends.embedded_redis import EmbeddedRedis
from castiel.models import Provider
from tests.integration.cli.helpers import castiel, castiel_json
from tests.integration.credentials.conftest import CLIENT_ID, CLIENT_SECRET, StandIn

_HEADLESS = {"DISPLAY", "WAYLAND_DISPLAY", "BROWSER"}


@pytest.fixture
def environment(data_dir: Path, redis_server: EmbeddedRedis, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    castiel("connections", "add", "--tenant", "acme", "--provider", "github", "--id", "gh")
    # No graphical browser: the flow must print the URL and wait, never fail.
    return {name: value for name, value in os.environ.items() if name not in _HEADLESS}


@pytest.fixture
def connect(environment: dict[str, str], oauth: StandIn) -> Iterator[subprocess.Popen[str]]:
    command = [
        sys.executable, "-m", "castiel.cli", "credentials", "connect", "--tenant", "acme", "--connection", "gh",
        "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET, "--scope", "repo",
        "--authorize-url", oauth.authorize_url(Provider.GITHUB), "--token-url", oauth.token_url(Provider.GITHUB),
        "--timeout", "60",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def printed_url(process: subprocess.Popen[str]) -> str:
    assert process.stderr is not None
    for line in process.stderr:
        if line.startswith("http://"):
            return line.strip()
    raise AssertionError(f"no authorize URL printed; exit {process.wait()}")


def test_connect_authorises_stores_and_links_the_credential(connect: subprocess.Popen[str], oauth: StandIn) -> None:
    url = printed_url(connect)
    query = parse_qs(urlsplit(url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert len(query["state"][0]) >= 32
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert query["redirect_uri"][0].endswith("/callback")

    page = httpx.get(url, follow_redirects=True, timeout=30)  # the browser: approve, follow the redirect home
    out, err = connect.communicate(timeout=60)

    assert page.status_code == 200
    assert "Authorisation received" in page.text
    assert connect.returncode == 0, err
    metadata = json.loads(out)
    assert (metadata["credentialType"], metadata["status"], metadata["refreshable"]) == (
        "oauth2_authorization_code",
        "active",
        True,
    )
    (grant,) = oauth.sandbox.grants.values()  # the code exchange passed the PKCE and redirect checks
    assert grant.access_token not in out + err
    (connection,) = castiel_json("connections", "list", "--json")
    assert connection["credentialId"] == metadata["id"]
    refreshed = castiel_json("credentials", "refresh", metadata["id"])
    assert refreshed["version"] == 2


def test_a_callback_with_another_state_is_refused(connect: subprocess.Popen[str], oauth: StandIn) -> None:
    url = printed_url(connect)
    redirect_uri = parse_qs(urlsplit(url).query)["redirect_uri"][0]

    httpx.get(redirect_uri, params={"code": "forged", "state": "not-the-one"}, timeout=30)
    out, err = connect.communicate(timeout=60)

    assert connect.returncode == 1
    assert "state does not match" in err
    assert "Traceback" not in err
    assert out == ""
    assert oauth.sandbox.grants == {}
    assert castiel_json("credentials", "list", "--json") == []
