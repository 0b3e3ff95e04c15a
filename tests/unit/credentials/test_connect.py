"""The connect flow's pieces: PKCE, the authorize URL per dialect, the callback check, the loopback listener, and a
browser opened only when a graphical one exists."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import webbrowser
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from castiel.credentials.connect import (
    LoopbackCallback,
    authorize_url,
    check_callback,
    new_pkce,
    new_state,
    open_browser,
)
from castiel.credentials.dialects import DIALECTS
from castiel.errors import ConfigError, PermanentError, RetryableError
from castiel.models import Provider


def test_pkce_is_s256_of_a_verifier_within_rfc_7636_bounds() -> None:
    pkce = new_pkce()
    assert 43 <= len(pkce.verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(pkce.verifier.encode()).digest()).rstrip(b"=").decode()
    assert pkce.challenge == expected
    assert pkce.verifier not in repr(pkce)
    assert new_state() != new_state()


@pytest.mark.parametrize(
    ("provider", "extra"),
    [
        (Provider.GOOGLE, {"access_type": ["offline"], "prompt": ["consent"]}),
        (Provider.NOTION, {"owner": ["user"]}),
        (Provider.GITHUB, {}),
    ],
)
def test_the_authorize_url_carries_pkce_state_and_the_providers_own_parameters(
    provider: Provider, extra: dict[str, list[str]]
) -> None:
    pkce = new_pkce()
    url = authorize_url(
        DIALECTS[provider], client_id="cid", redirect_uri="http://127.0.0.1:1/callback", state="st", pkce=pkce,
        scope="a b",
    )  # fmt: skip
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == DIALECTS[provider].authorize_url
    query = parse_qs(parts.query)
    assert query == {
        "response_type": ["code"],
        "client_id": ["cid"],
        "redirect_uri": ["http://127.0.0.1:1/callback"],
        "state": ["st"],
        "code_challenge": [pkce.challenge],
        "code_challenge_method": ["S256"],
        "scope": ["a b"],
        **extra,
    }


def test_an_override_with_its_own_query_is_extended_and_standard_needs_one() -> None:
    url = authorize_url(
        DIALECTS[Provider.STANDARD], client_id="c", redirect_uri="r", state="s", pkce=new_pkce(), scope=None,
        override="https://idp.test/authorize?tenant=x",
    )  # fmt: skip
    assert url.startswith("https://idp.test/authorize?tenant=x&response_type=code")
    with pytest.raises(ConfigError, match="--authorize-url"):
        authorize_url(
            DIALECTS[Provider.STANDARD], client_id="c", redirect_uri="r", state="s", pkce=new_pkce(), scope=None
        )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"code": "c", "state": "other"}, "state does not match"),
        ({"code": "c"}, "state does not match"),
        ({"error": "access_denied", "error_description": "user said no", "state": "s"}, "access_denied"),
        ({"state": "s"}, "no authorization code"),
    ],
)
def test_a_callback_without_the_right_state_and_a_code_is_refused(params: dict[str, str], message: str) -> None:
    with pytest.raises(PermanentError, match=message):
        check_callback(params, "s")
    assert check_callback({"code": "c", "state": "s"}, "s") == "c"


async def test_the_loopback_listener_answers_only_its_callback() -> None:
    async with LoopbackCallback() as callback, httpx.AsyncClient() as browser:
        assert callback.redirect_uri.startswith("http://127.0.0.1:")
        base = callback.redirect_uri.removesuffix("/callback")
        assert (await browser.get(f"{base}/favicon.ico")).status_code == 404
        waiting = asyncio.ensure_future(callback.wait(10))
        page = await browser.get(callback.redirect_uri, params={"code": "abc", "state": "s"})
        assert page.status_code == 200
        assert await waiting == {"code": "abc", "state": "s"}


async def test_no_callback_in_time_is_retryable() -> None:
    async with LoopbackCallback() as callback:
        with pytest.raises(RetryableError, match="no OAuth callback"):
            await callback.wait(0.01)


class _Graphical(webbrowser.BackgroundBrowser):
    def __init__(self) -> None:
        super().__init__("graphical")
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)
        return True


def test_a_graphical_browser_is_opened(monkeypatch: pytest.MonkeyPatch) -> None:
    browser = _Graphical()
    monkeypatch.setattr(webbrowser, "get", lambda: browser)
    assert open_browser("http://x.test/authorize") is True
    assert browser.opened == ["http://x.test/authorize"]


def test_a_console_browser_is_never_given_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    console = webbrowser.GenericBrowser("lynx")
    monkeypatch.setattr(console, "open", lambda *args, **kwargs: pytest.fail("lynx must not be started"))
    monkeypatch.setattr(webbrowser, "get", lambda: console)
    assert open_browser("http://x.test/authorize") is False


def test_no_browser_at_all_is_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def none() -> webbrowser.BaseBrowser:
        raise webbrowser.Error("could not locate runnable browser")

    monkeypatch.setattr(webbrowser, "get", none)
    assert open_browser("http://x.test/authorize") is False
