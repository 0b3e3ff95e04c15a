"""The HMAC webhook schemes: providers' documented vectors, round trips, rotation, malformed headers, replay window."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Callable

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from castiel.errors import ConfigError, SignatureError
from castiel.webhooks.schemes import GITHUB, HMAC_SCHEMES, NOTION, SLACK, STANDARD, HmacScheme
from castiel.webhooks.verifiers import HmacVerifier

NOW = 1_700_000_000
SECRET = "s3cret"
SCHEMES = list(HMAC_SCHEMES.values())
SCHEME_IDS = list(HMAC_SCHEMES)

# GitHub, "Validating webhook deliveries".
GITHUB_SECRET = "It's a Secret to Everybody"
GITHUB_BODY = b"Hello, World!"
GITHUB_SIGNATURE = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

# Slack, "Verifying requests from Slack": a slash command.
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = 1531420618
SLACK_BODY = (
    b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
    b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
    b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
    b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
)
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"

# standard-webhooks, libraries/python/tests/test_webhooks.py::test_sign_function.
STANDARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
STANDARD_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
STANDARD_TIMESTAMP = 1614265330
STANDARD_BODY = b'{"test": 2432232314}'
STANDARD_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
B64_32 = base64.b64encode(b"\x01" * 32).decode()

VECTORS = [
    pytest.param(
        GITHUB,
        GITHUB_SECRET,
        GITHUB_BODY,
        NOW,
        {"X-Hub-Signature-256": GITHUB_SIGNATURE, "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
        id="github",
    ),
    pytest.param(
        SLACK,
        SLACK_SECRET,
        SLACK_BODY,
        SLACK_TIMESTAMP,
        {"X-Slack-Request-Timestamp": str(SLACK_TIMESTAMP), "X-Slack-Signature": SLACK_SIGNATURE},
        id="slack",
    ),
    pytest.param(
        STANDARD,
        STANDARD_SECRET,
        STANDARD_BODY,
        STANDARD_TIMESTAMP,
        {
            "webhook-id": STANDARD_ID,
            "webhook-timestamp": str(STANDARD_TIMESTAMP),
            "webhook-signature": STANDARD_SIGNATURE,
        },
        id="standard",
    ),
]


def signed(scheme: HmacScheme, body: bytes = b'{"event": 1}', secret: str | bytes = SECRET) -> dict[str, str]:
    return scheme.sign(body, secret, now=NOW, delivery_id="delivery-1")


@pytest.mark.parametrize(("scheme", "secret", "body", "now", "headers"), VECTORS)
def test_sign_reproduces_the_providers_documented_signature(
    scheme: HmacScheme, secret: str, body: bytes, now: int, headers: dict[str, str]
) -> None:
    delivery_id = headers.get("X-GitHub-Delivery") or headers.get("webhook-id")
    assert scheme.sign(body, secret, now=now, delivery_id=delivery_id) == headers


@pytest.mark.parametrize(("scheme", "secret", "body", "now", "headers"), VECTORS)
async def test_the_documented_delivery_verifies(
    scheme: HmacScheme, secret: str, body: bytes, now: int, headers: dict[str, str]
) -> None:
    verified = await HmacVerifier(scheme, [secret]).verify(headers, body, now + 1)
    assert verified.scheme == scheme.name
    assert verified.key_index == 0


def test_notion_signs_the_body_with_the_verification_token() -> None:
    token = "secret_verification_token"
    body = b'{"id":"evt-1","type":"page.created"}'
    expected = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    assert NOTION.sign(body, token, now=NOW) == {"X-Notion-Signature": expected}


@pytest.mark.parametrize(
    "body",
    [b"", b"{}", os.urandom(2048), b"\xff\xfe not utf-8 \x00", "ünïcødé ✓".encode()],
    ids=["empty", "json", "2kb-random", "binary", "utf8"],
)
@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
def test_what_sign_produces_verify_accepts(scheme: HmacScheme, body: bytes) -> None:
    verified = scheme.verify(signed(scheme, body), body, scheme.keys(["s3cret"]), NOW)
    assert verified.scheme == scheme.name


@pytest.mark.parametrize(
    ("scheme", "delivery_id", "timestamp"),
    [(GITHUB, "delivery-1", None), (SLACK, None, NOW), (NOTION, None, None), (STANDARD, "delivery-1", NOW)],
    ids=SCHEME_IDS,
)
def test_verified_carries_the_delivery_id_and_timestamp_the_scheme_signs(
    scheme: HmacScheme, delivery_id: str | None, timestamp: int | None
) -> None:
    verified = scheme.verify(signed(scheme), b'{"event": 1}', scheme.keys(["s3cret"]), NOW)
    assert (verified.delivery_id, verified.timestamp) == (delivery_id, timestamp)


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
def test_a_tampered_body_does_not_verify(scheme: HmacScheme) -> None:
    with pytest.raises(SignatureError, match="matches none of the registration's secrets"):
        scheme.verify(signed(scheme, b'{"amount": 1}'), b'{"amount": 9}', scheme.keys(["s3cret"]), NOW)


@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
def test_rotation_accepts_any_configured_secret_and_says_which(scheme: HmacScheme) -> None:
    keys = scheme.keys(["old-secret", "new-secret"])
    body = b'{"event": 1}'
    assert scheme.verify(signed(scheme, body, "old-secret"), body, keys, NOW).key_index == 0
    assert scheme.verify(signed(scheme, body, "new-secret"), body, keys, NOW).key_index == 1
    with pytest.raises(SignatureError, match="matches none"):
        scheme.verify(signed(scheme, body, "retired-secret"), body, keys, NOW)


def test_standard_accepts_any_matching_entry_among_several_signatures() -> None:
    body = b'{"event": 1}'
    valid = signed(STANDARD, body)
    unknown = "v1," + base64.b64encode(os.urandom(32)).decode()
    valid["webhook-signature"] = f"{unknown} v1a,{base64.b64encode(os.urandom(64)).decode()} v2,xyz  " + (
        valid["webhook-signature"] + " " + unknown
    )
    assert STANDARD.verify(valid, body, STANDARD.keys(["s3cret"]), NOW).delivery_id == "delivery-1"


# The reference library's own multi-signature case (standard-webhooks, libraries/python,
# test_multi_sig_payload_is_valid), plus entries it would not expect: no comma, not base64, the wrong length, an
# unknown version, padding missing.
UNUSABLE_ENTRIES = [
    "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v2,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=",
    "v1" + B64_32,
    "v1,not*base64",
    "v1,\u00e9" + B64_32[1:],
    "v1," + B64_32[:-4],
    "v1," + B64_32.rstrip("="),
    "v1,",
    ",",
    "v1a," + B64_32,
]


@pytest.mark.parametrize("unusable", UNUSABLE_ENTRIES)
@pytest.mark.parametrize("position", ["before", "after"])
def test_standard_skips_entries_it_cannot_use_and_verifies_with_any_v1_that_matches(
    unusable: str, position: str
) -> None:
    headers = {
        "webhook-id": STANDARD_ID,
        "webhook-timestamp": str(STANDARD_TIMESTAMP),
        "webhook-signature": STANDARD_SIGNATURE,
    }
    entries = [unusable, STANDARD_SIGNATURE] if position == "before" else [STANDARD_SIGNATURE, unusable]
    headers["webhook-signature"] = " ".join(entries)

    verified = STANDARD.verify(headers, STANDARD_BODY, STANDARD.keys([STANDARD_SECRET]), STANDARD_TIMESTAMP)

    assert (verified.delivery_id, verified.key_index) == (STANDARD_ID, 0)


def test_standard_without_a_usable_v1_entry_says_what_it_skipped() -> None:
    headers = {
        "webhook-id": STANDARD_ID,
        "webhook-timestamp": str(STANDARD_TIMESTAMP),
        "webhook-signature": "v1,not*base64 v2,xyz nocomma",
    }
    with pytest.raises(SignatureError) as refused:
        STANDARD.verify(headers, STANDARD_BODY, STANDARD.keys([STANDARD_SECRET]), STANDARD_TIMESTAMP)
    assert str(refused.value) == (
        "webhook-signature has no usable v1 signature"
        " (entry 1 is not valid base64; entry 2 is version v2; entry 3 has no comma)"
    )


@pytest.mark.parametrize(
    ("scheme", "name"),
    [(GITHUB, "X-Hub-Signature-256"), (SLACK, "X-Slack-Signature"), (NOTION, "X-Notion-Signature")],
    ids=["github", "slack", "notion"],
)
def test_uppercase_hex_is_the_same_digest_and_verifies(scheme: HmacScheme, name: str) -> None:
    headers = signed(scheme)
    prefix, _, digits = headers[name].partition("=")
    headers[name] = f"{prefix}={digits.upper()}"
    assert scheme.verify(headers, b'{"event": 1}', scheme.keys(["s3cret"]), NOW).key_index == 0


@pytest.mark.parametrize("case", [str.lower, str.upper, str.title], ids=["lower", "upper", "title"])
@pytest.mark.parametrize("scheme", SCHEMES, ids=SCHEME_IDS)
def test_header_names_match_case_insensitively(scheme: HmacScheme, case: Callable[[str], str]) -> None:
    headers = {case(name): value for name, value in signed(scheme).items()}
    assert scheme.verify(headers, b'{"event": 1}', scheme.keys(["s3cret"]), NOW).scheme == scheme.name


def test_github_never_falls_back_to_the_sha1_header() -> None:
    body = b'{"zen": "Design for failure."}'
    sha1 = "sha1=" + hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    with pytest.raises(SignatureError, match=r"missing X-Hub-Signature-256 header \(the SHA-1"):
        GITHUB.verify({"X-Hub-Signature": sha1}, body, GITHUB.keys(["s3cret"]), NOW)


HEX = "ab" * 32
B64 = base64.b64encode(b"\x01" * 32).decode()
DELETE = None

MALFORMED = [
    (GITHUB, "X-Hub-Signature-256", DELETE, "missing X-Hub-Signature-256 header"),
    (GITHUB, "X-Hub-Signature-256", "", "does not start with sha256="),
    (GITHUB, "X-Hub-Signature-256", HEX, "does not start with sha256="),
    (GITHUB, "X-Hub-Signature-256", "sha1=" + "ab" * 20, "does not start with sha256="),
    (GITHUB, "X-Hub-Signature-256", "SHA256=" + HEX, "does not start with sha256="),
    (GITHUB, "X-Hub-Signature-256", "sha256=", "64 hex digits"),
    (GITHUB, "X-Hub-Signature-256", "sha256=" + HEX[:-2], "64 hex digits"),
    (GITHUB, "X-Hub-Signature-256", "sha256=" + HEX + "00", "64 hex digits"),
    (GITHUB, "X-Hub-Signature-256", "sha256=" + "zz" * 32, "64 hex digits"),
    (GITHUB, "X-Hub-Signature-256", "sha256=" + HEX[:-2] + " a", "64 hex digits"),
    (GITHUB, "X-Hub-Signature-256", "sha256=" + "\u0663" * 64, "64 hex digits"),
    (SLACK, "X-Slack-Request-Timestamp", DELETE, "missing X-Slack-Request-Timestamp header"),
    (SLACK, "X-Slack-Request-Timestamp", "", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", f"{NOW}.0", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", f"{NOW}.5", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", f"+{NOW}", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", f"-{NOW}", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", f" {NOW}", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", "1.7e9", "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", "\u0661\u0667" + "\u0660" * 8, "digits only"),
    (SLACK, "X-Slack-Request-Timestamp", "9" * 5000, "digits only"),
    (SLACK, "X-Slack-Signature", DELETE, "missing X-Slack-Signature header"),
    (SLACK, "X-Slack-Signature", HEX, "does not start with v0="),
    (SLACK, "X-Slack-Signature", "v1=" + HEX, "does not start with v0="),
    (SLACK, "X-Slack-Signature", "v0=" + HEX[:10], "64 hex digits"),
    (NOTION, "X-Notion-Signature", DELETE, "missing X-Notion-Signature header"),
    (NOTION, "X-Notion-Signature", HEX, "does not start with sha256="),
    (NOTION, "X-Notion-Signature", "sha256=not-hex", "64 hex digits"),
    (STANDARD, "webhook-id", DELETE, "missing webhook-id header"),
    (STANDARD, "webhook-id", "", "missing webhook-id header"),
    (STANDARD, "webhook-id", "msg\x00", "printable ASCII"),
    (STANDARD, "webhook-id", "msg_\udc80", "printable ASCII"),
    (STANDARD, "webhook-timestamp", DELETE, "missing webhook-timestamp header"),
    (STANDARD, "webhook-timestamp", f"{NOW}.000", "digits only"),
    (STANDARD, "webhook-timestamp", "-1", "digits only"),
    (STANDARD, "webhook-timestamp", "now", "digits only"),
    (STANDARD, "webhook-signature", DELETE, "missing webhook-signature header"),
    (STANDARD, "webhook-signature", "", "webhook-signature is empty"),
    (STANDARD, "webhook-signature", "   ", "webhook-signature is empty"),
    (STANDARD, "webhook-signature", "v1" + B64, "no usable v1 signature (entry 1 has no comma)"),
    (STANDARD, "webhook-signature", f"v1,{B64} v1{B64}", "none of the registration's secrets (skipped: entry 2 has"),
    (STANDARD, "webhook-signature", "v1,not*base64", "no usable v1 signature (entry 1 is not valid base64)"),
    (STANDARD, "webhook-signature", "v1," + B64[:-4], "no usable v1 signature (entry 1 is not a 32-byte HMAC-SHA256)"),
    (STANDARD, "webhook-signature", "v1,", "no usable v1 signature (entry 1 is not a 32-byte HMAC-SHA256)"),
    (STANDARD, "webhook-signature", "v1a," + B64, "no usable v1 signature (entry 1 is version v1a)"),
    (STANDARD, "webhook-signature", "v1,\u00e9" + B64[1:], "no usable v1 signature (entry 1 is not valid base64)"),
]


@pytest.mark.parametrize(
    ("scheme", "name", "value", "reason"),
    MALFORMED,
    ids=[f"{case[0].name}-{case[1]}-{i}" for i, case in enumerate(MALFORMED)],
)
def test_malformed_headers_are_refused_with_a_reason(
    scheme: HmacScheme, name: str, value: str | None, reason: str
) -> None:
    headers = signed(scheme)
    if value is DELETE:
        del headers[name]
    else:
        headers[name] = value
    with pytest.raises(SignatureError, match=re.escape(reason)):
        scheme.verify(headers, b'{"event": 1}', scheme.keys(["s3cret"]), NOW)


@pytest.mark.parametrize(
    ("age", "reason"),
    [
        (-301, "301 s in the future"),
        (-300, None),
        (-1, None),
        (0, None),
        (299.9, None),
        (300, None),
        (300.5, "300 s old"),
        (301, "301 s old, outside the 300 s window"),
        (86_400, "stale or replayed"),
    ],
)
@pytest.mark.parametrize("scheme", [SLACK, STANDARD], ids=["slack", "standard"])
def test_the_replay_window_is_300_seconds_inclusive_both_ways(
    scheme: HmacScheme, age: float, reason: str | None
) -> None:
    headers, keys, body = signed(scheme), scheme.keys(["s3cret"]), b'{"event": 1}'
    if reason is None:
        assert scheme.verify(headers, body, keys, NOW + age).timestamp == NOW
    else:
        with pytest.raises(SignatureError, match=reason):
            scheme.verify(headers, body, keys, NOW + age)


def test_the_signed_timestamp_text_is_used_as_sent() -> None:
    body = b"{}"
    stamp = f"0{NOW}"
    mac = hmac.new(b"s3cret", f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={mac}"}
    assert SLACK.verify(headers, body, SLACK.keys(["s3cret"]), NOW).timestamp == NOW


STANDARD_KEY = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")


@pytest.mark.parametrize(
    ("secret", "key"),
    [
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", STANDARD_KEY),
        (
            "whsec_" + base64.b64encode(b"0123456789abcdefghijklmnopq").decode().rstrip("="),
            b"0123456789abcdefghijklmnopq",
        ),
        (STANDARD_KEY, STANDARD_KEY),
        ("a plain shared secret", b"a plain shared secret"),
    ],
    ids=["whsec", "whsec-unpadded", "raw-bytes", "raw-text"],
)
def test_standard_keys_are_whsec_base64_or_raw(secret: str | bytes, key: bytes) -> None:
    assert STANDARD.key_bytes(secret) == key


@pytest.mark.parametrize(
    ("scheme", "secrets", "reason"),
    [
        (GITHUB, [], "needs at least one secret"),
        (SLACK, [""], "empty slack secret"),
        (NOTION, [b""], "empty notion secret"),
        (STANDARD, ["whsec_"], "empty standard secret"),
        (STANDARD, ["whsec_not base64!"], "not valid base64"),
    ],
)
def test_unusable_secrets_are_configuration_errors(scheme: HmacScheme, secrets: list[str | bytes], reason: str) -> None:
    with pytest.raises(ConfigError, match=reason):
        scheme.keys(secrets)


HEADER_NAMES = sorted(
    {name for scheme in SCHEMES for name in signed(scheme)} | {"X-Hub-Signature", "X-GitHub-Delivery"}
)
FRAGMENTS = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(["sha256=", "v0=", "v1,", "v1a,", " ", ",", ".", "=", str(NOW), HEX, B64]),
    st.binary(min_size=31, max_size=33).map(bytes.hex),
    st.binary(min_size=31, max_size=33).map(lambda raw: base64.b64encode(raw).decode()),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
HEADERS = st.dictionaries(
    st.sampled_from([spelling for name in HEADER_NAMES for spelling in (name, name.lower(), name.upper())]),
    st.lists(FRAGMENTS, max_size=5).map("".join),
    max_size=6,
)
FUZZ_KEYS = {scheme.name: scheme.keys(["s3cret", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]) for scheme in SCHEMES}


@settings(max_examples=200, deadline=None)
@given(headers=HEADERS, body=st.binary(max_size=256), skew=st.integers(min_value=-400, max_value=400))
def test_fuzzed_headers_and_bodies_only_ever_raise_signature_error(
    headers: dict[str, str], body: bytes, skew: int
) -> None:
    for scheme in SCHEMES:
        with pytest.raises(SignatureError):
            scheme.verify(headers, body, FUZZ_KEYS[scheme.name], NOW + skew)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), body=st.binary(max_size=64))
def test_fuzzing_one_header_of_a_signed_delivery_never_raises_anything_else(data: st.DataObject, body: bytes) -> None:
    scheme = data.draw(st.sampled_from(SCHEMES))
    headers = scheme.sign(body, SECRET, now=NOW, delivery_id="delivery-1")
    name = data.draw(st.sampled_from(sorted(headers)))
    replacement = data.draw(st.lists(FRAGMENTS, max_size=5).map("".join))
    assume(replacement != headers[name])
    headers[name] = replacement
    try:
        verified = scheme.verify(headers, body, scheme.keys([SECRET]), NOW)
    except SignatureError:
        return
    # Only a header the signature does not cover (GitHub's delivery id) can change and still verify.
    assert name == "X-GitHub-Delivery"
    assert verified.delivery_id == (headers[name] or None)
