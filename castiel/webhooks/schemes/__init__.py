"""The providers' HMAC-SHA256 signing schemes, one module each, exactly as the provider signs, over the raw bytes
(DESIGN §6): ``verify`` what a provider sent, ``sign`` as it would (tests, the CLI, the sandbox).

* github: ``X-Hub-Signature-256: sha256=<hex HMAC(secret, body)>``; never the SHA-1 ``X-Hub-Signature``
  (``body_hex.py``).
* notion: ``X-Notion-Signature: sha256=<hex HMAC(verification token, body)>`` (``body_hex.py``).
* slack: ``X-Slack-Signature: v0=<hex HMAC(secret, "v0:{ts}:{body}")>`` with ``X-Slack-Request-Timestamp``
  (``slack.py``).
* standard (Standard Webhooks; also Salesforce signed callouts): ``webhook-signature: v1,<base64 HMAC(key,
  "{id}.{ts}.{body}")> …`` with ``webhook-id`` and ``webhook-timestamp``; ``whsec_`` base64 keys (``standard.py``).

Policies they share (``base.py``):

* Header names match case-insensitively.
* Several secrets may be configured (rotation); any one of them verifies. ``Verified.key_index`` says which, so an
  operator sees when the old secret falls out of use.
* Hex signatures must be exactly 64 hex digits; they are decoded and the digest *bytes* compared with
  ``hmac.compare_digest``, so uppercase hex (the same digest) is accepted.
* Timestamps must be ASCII digits only (no sign, fraction or space) and within ±300 s of ``now``, inclusive both ways.
* Secrets are decoded once (``whsec_`` base64 keys included) into keyed HMAC states, not per delivery.
"""

from __future__ import annotations

from collections.abc import Mapping

from castiel.webhooks.schemes.base import TOLERANCE_SECONDS, HmacScheme, Secret, Verified, header
from castiel.webhooks.schemes.body_hex import BodyHexScheme
from castiel.webhooks.schemes.slack import SlackScheme
from castiel.webhooks.schemes.standard import StandardWebhooksScheme

__all__ = [
    "GITHUB",
    "HMAC_SCHEMES",
    "NOTION",
    "SLACK",
    "STANDARD",
    "TOLERANCE_SECONDS",
    "BodyHexScheme",
    "HmacScheme",
    "Secret",
    "SlackScheme",
    "StandardWebhooksScheme",
    "Verified",
    "header",
]

GITHUB = BodyHexScheme(
    "github",
    "X-Hub-Signature-256",
    delivery_header="X-GitHub-Delivery",
    missing_hint=" (the SHA-1 X-Hub-Signature is never accepted)",
)
SLACK = SlackScheme()
NOTION = BodyHexScheme("notion", "X-Notion-Signature")
STANDARD = StandardWebhooksScheme()

HMAC_SCHEMES: Mapping[str, HmacScheme] = {scheme.name: scheme for scheme in (GITHUB, SLACK, NOTION, STANDARD)}
"""Every HMAC scheme by name."""
