"""``castiel webhooks``: register endpoints, watch their health, and check a delivery a provider says we rejected.

A registration's signing secret is a ``webhook_secret`` credential (``castiel credentials show`` lists it by the id
``add`` prints as ``credentialId``): the commands that change secrets go through the credential service, on the same
Redis lock as ``castiel credentials rotate``.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import httpx
import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, public, run, with_secrets, with_store
from castiel.cli.credentials import with_vault_on
from castiel.cli.lookup import read_named
from castiel.clock import system_clock
from castiel.credentials.webhook_secrets import ROTATION_GRACE
from castiel.errors import ConfigError, NotFound, RetryableError, SignatureError
from castiel.models import Connection, Provider, RotationPolicy, WebhookAudit, WebhookRegistration, format_utc
from castiel.ports import DocumentStore, SecretStore
from castiel.text import printable
from castiel.webhooks.admin import WebhookAdmin
from castiel.webhooks.google_oidc import GoogleSigningKeys
from castiel.webhooks.health import outcomes_named, recent_deliveries, registration_health
from castiel.webhooks.notion_verification import FINGERPRINT_DIGITS
from castiel.webhooks.registrations import WebhookRegistrations
from castiel.webhooks.verifiers import (
    AUDIENCE_SETTING,
    ORGANIZATION_ID_SETTING,
    SERVICE_ACCOUNT_SETTING,
    build_verifier,
    check_verifiable,
)

T = TypeVar("T")
_GRACE_DAYS = ROTATION_GRACE.days
_REASON_SHOWN = 1000  # characters of a delivery's reason on its line

webhooks_app = typer.Typer(no_args_is_help=True, help="Webhook registrations.")

Audience = Annotated[str, typer.Option(help="Google: the push subscription's OIDC audience.")]
ServiceAccount = Annotated[str, typer.Option("--service-account", help="Google: the push service account e-mail.")]
OrganizationId = Annotated[str, typer.Option("--organization-id", help="Salesforce SOAP Outbound Messages: the org.")]


def _provider_settings(provider: Provider, audience: str, service_account: str, organization_id: str) -> dict[str, str]:
    """The registration settings given for a provider's verification (``check_verifiable`` judges them)."""
    if provider is Provider.GOOGLE:
        given = {AUDIENCE_SETTING: audience, SERVICE_ACCOUNT_SETTING: service_account}
        return {name: value for name, value in given.items() if value}
    if audience or service_account:
        raise typer.BadParameter("--audience and --service-account are for Google push subscriptions only")
    if organization_id:
        if provider is not Provider.SALESFORCE:
            raise typer.BadParameter("--organization-id is for Salesforce Outbound Messages only")
        return {ORGANIZATION_ID_SETTING: organization_id}
    return {}


@webhooks_app.command("add")
def add(
    tenant: Annotated[str, typer.Option(help="Tenant id.")],
    connection: Annotated[str, typer.Option(help="Connection id the events belong to.")],
    provider: Annotated[
        Provider, typer.Option(help="Who signs the deliveries: the connection's provider, or standard.")
    ],
    secret: Annotated[str, typer.Option(help="Signing secret (HMAC providers, Salesforce signed callouts).")] = "",
    audience: Audience = "",
    service_account: ServiceAccount = "",
    organization_id: OrganizationId = "",
    events: Annotated[str, typer.Option(help="Comma-separated event names (informational).")] = "",
    rotation_days: Annotated[int | None, typer.Option(min=1, help="Rotate the secret every N days.")] = None,
    warn_before_days: Annotated[
        int | None, typer.Option(min=0, help="Warn N days before the rotation is due (default 14).")
    ] = None,
) -> None:
    """Register an endpoint; prints its id and URL path as JSON. The secret becomes the registration's
    webhook_secret credential (value in the secret store only); the token refresher warns before its rotation is due."""
    settings = _provider_settings(provider, audience, service_account, organization_id)
    if warn_before_days is not None and rotation_days is None:
        raise typer.BadParameter("--warn-before-days needs --rotation-days")
    rotation = None
    if rotation_days is not None:
        rotation = RotationPolicy(interval_days=rotation_days, warn_before_days=warn_before_days or 14)

    async def register(admin: WebhookAdmin, store: DocumentStore) -> WebhookRegistration:
        conn = await read_named(store, Connection, "connection", connection, tenant)
        names = [name.strip() for name in events.split(",") if name.strip()]
        return await admin.add(
            conn, provider, secret=secret or None, settings=settings, events=names, rotation=rotation
        )

    echo_json(_shown(run(_with_admin(register))))


def _shown(registration: WebhookRegistration) -> dict[str, Any]:
    """A registration as ``add`` and ``list --json`` print it: its stored fields and the URL path it answers on."""
    return {**public(registration), "path": f"/webhooks/{registration.id}/events"}


async def _with_admin(work: Callable[[WebhookAdmin, DocumentStore], Awaitable[T]]) -> T:
    """Run ``work`` with the webhook admin on the configured backends."""

    async def with_store_(store: DocumentStore) -> T:
        return await with_secrets(lambda secrets: admin_on(store, secrets, lambda admin: work(admin, store)))

    return await with_store(with_store_)


async def admin_on(store: DocumentStore, secrets: SecretStore, work: Callable[[WebhookAdmin], Awaitable[T]]) -> T:
    """Run ``work`` with the webhook admin on ``store`` and ``secrets`` (and the credential service that holds the
    registrations' secrets), for any command that adds or removes registrations."""
    return await with_vault_on(
        store, secrets, lambda vault: work(WebhookAdmin(WebhookRegistrations(store), secrets, vault))
    )


@webhooks_app.command("list")
def list_registrations(
    tenant: Annotated[str, typer.Option(help="Only this tenant.")] = "", as_json: JsonFlag = False
) -> None:
    """Every registration, one line each (id, provider, tenant/connection, status), or --json as `add` prints them.
    Secrets are never printed: only their names."""
    found = run(with_store(lambda store: WebhookRegistrations(store).list(tenant or None)))
    echo_items([_shown(registration) for registration in found], as_json, _registration_line)


def _registration_line(item: dict[str, Any]) -> str:
    line = f"{item['id']}  {item['provider']}  {item['tenantId']}/{item['connectionId']}  {item['status']}"
    return f"{line}  verification {item['verification']}" if item.get("verification") else line


@webhooks_app.command("health")
def health(registration_id: Annotated[str, typer.Argument(help="Registration id.")]) -> None:
    """Deliveries accepted, duplicate, rejected and failed over the audit window (30 days), the last one's time,
    outcome and reason, and a status (healthy, degraded, failing) as JSON."""

    async def report(store: DocumentStore) -> dict[str, Any]:
        registration = await WebhookRegistrations(store).get(registration_id)
        result = await registration_health(store, registration.id)
        return {"id": registration.id, **result.model_dump(mode="json", by_alias=True)}

    echo_json(run(with_store(report)))


def _check_outcome(value: str) -> str:
    if value:
        try:
            outcomes_named(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@webhooks_app.command("deliveries")
def deliveries(
    registration_id: Annotated[str, typer.Argument(help="Registration id.")],
    outcome: Annotated[
        str,
        typer.Option(
            callback=_check_outcome,
            help="Only a group (accepted, duplicate, rejected, failed) or one outcome (bad_signature, …).",
        ),
    ] = "",
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many, newest first.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Recent deliveries from the audit, newest first: time, outcome, HTTP status, delivery id and reason."""

    # Deliveries to an id nobody registered are audited too (404s), under the id as the receiver logs it.
    audited_as = printable(registration_id)

    async def read(store: DocumentStore) -> list[WebhookAudit]:
        selected = outcomes_named(outcome) if outcome else ()
        found = await recent_deliveries(store, audited_as, outcomes=selected, limit=limit)
        # List them, but name a typo as one.
        if not found and await WebhookRegistrations(store).find(registration_id) is None:
            raise NotFound(f"no webhook registration '{audited_as}', and no matching delivery to it in the audit")
        return found

    echo_items(run(with_store(read)), as_json, _delivery_line)


def _delivery_line(item: dict[str, Any]) -> str:
    """One delivery on one line: what a sender sent (its delivery id, a reason quoting it) is escaped."""
    delivery_id = printable(item["deliveryId"]) if item.get("deliveryId") else "-"
    parts = (item["receivedAt"], item["outcome"], str(item["statusCode"]), delivery_id)
    return "  ".join((*parts, printable(item.get("reason") or "", _REASON_SHOWN))).rstrip()


@webhooks_app.command("rotate")
def rotate(
    registration_id: Annotated[str, typer.Argument(help="Registration id.")],
    secret: Annotated[str, typer.Option(help="The new signing secret.")],
) -> None:
    """Add a new signing secret (a new version of its credential, as `credentials rotate` makes); the previous one
    keeps verifying for the rotation grace (7 days)."""
    credential = run(_with_admin(lambda admin, _: admin.rotate(registration_id, secret)))
    typer.echo(
        f"rotated the secret of {registration_id} (credential {credential.id}, version {credential.version});"
        f" the previous one verifies for another {_GRACE_DAYS} days"
    )


@webhooks_app.command("remove")
def remove(registration_id: Annotated[str, typer.Argument(help="Registration id.")]) -> None:
    """Delete a registration and its signing secret (its credential); later deliveries to it get 404."""
    run(_with_admin(lambda admin, _: admin.remove(registration_id)))
    typer.echo(f"removed {registration_id}")


def _check_fingerprint(value: str) -> str:
    if value and not (len(value) == FINGERPRINT_DIGITS and all(c in "0123456789abcdefABCDEF" for c in value)):
        raise typer.BadParameter(f"a fingerprint is {FINGERPRINT_DIGITS} hex digits (as `webhooks confirm ID` lists)")
    return value


@webhooks_app.command("confirm")
def confirm(
    registration_id: Annotated[str, typer.Argument(help="Registration id (Notion).")],
    fingerprint: Annotated[
        str, typer.Option(callback=_check_fingerprint, help="Promote the token with this fingerprint.")
    ] = "",
    reveal: Annotated[
        str, typer.Option(callback=_check_fingerprint, help="Print the token with this fingerprint, for Notion.")
    ] = "",
    as_json: JsonFlag = False,
) -> None:
    """Notion's verification. Alone: list the tokens that arrived (fingerprint, arrival, source). --reveal FP: print
    that token to paste into Notion's Verify dialog. --fingerprint FP: make it the signing secret and close
    verification (later tokens are refused until `webhooks reopen`)."""
    if fingerprint and reveal:
        raise typer.BadParameter("give --fingerprint or --reveal, not both")
    if reveal:
        typer.echo(run(_with_admin(lambda admin, _: admin.reveal(registration_id, reveal))))
        return
    if fingerprint:
        run(_with_admin(lambda admin, _: admin.confirm(registration_id, fingerprint)))
        typer.echo(f"confirmed token {fingerprint.lower()} for {registration_id}; verification is closed until reopen")
        return
    candidates = run(_with_admin(lambda admin, _: admin.candidates(registration_id)))
    shown = [
        {"fingerprint": c.fingerprint, "receivedAt": format_utc(c.received_at), "source": c.source} for c in candidates
    ]
    if not shown and not as_json:
        typer.echo(f"no verification token waits for {registration_id}")
    echo_items(shown, as_json, lambda c: f"{c['fingerprint']}  {c['receivedAt']}  from {c['source'] or 'unknown'}")


@webhooks_app.command("reopen")
def reopen(registration_id: Annotated[str, typer.Argument(help="Registration id (Notion).")]) -> None:
    """Take Notion verification tokens again, discarding any still waiting; the confirmed token keeps verifying
    until a new one is confirmed (and for the rotation grace after)."""
    run(_with_admin(lambda admin, _: admin.reopen(registration_id)))
    typer.echo(
        f"verification of {registration_id} is open: list the tokens that arrive with `castiel webhooks confirm`"
    )


def _parse_header(raw: str) -> tuple[str, str]:
    name, sep, value = raw.partition(":")
    if not sep or not name.strip():
        raise typer.BadParameter(f"header {raw!r} must look like 'Name: value'")
    return name.strip().lower(), value.strip()


def _check_now(value: float | None) -> float | None:
    # A NaN compares false with every bound, so a replay window would accept any timestamp as of it.
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a time: give a UNIX time in seconds")
    return value


@webhooks_app.command("verify")
def verify(
    provider: Annotated[Provider, typer.Option(help="Who signed it.")],
    body_file: Annotated[
        Path, typer.Option("--body-file", help="The raw body, byte for byte.", exists=True, dir_okay=False)
    ],
    secret: Annotated[list[str] | None, typer.Option(help="Signing secret (repeat for rotation).")] = None,
    header: Annotated[list[str] | None, typer.Option(help="'Name: value' (repeat).")] = None,
    now: Annotated[
        float | None, typer.Option(callback=_check_now, help="Verify as of this UNIX time (default: now).")
    ] = None,
    audience: Audience = "",
    service_account: ServiceAccount = "",
    organization_id: OrganizationId = "",
) -> None:
    """Check one delivery offline: exit 0 and "valid", or exit 1 and exactly why it is rejected."""
    headers = dict(_parse_header(raw) for raw in header or [])
    settings = _provider_settings(provider, audience, service_account, organization_id)
    try:
        check_verifiable(provider, secret or [], settings)
    except ConfigError as exc:
        # Exit 1 means "the delivery is not valid"; a setup that could never verify anything is a usage error.
        raise typer.BadParameter(str(exc)) from None
    body = body_file.read_bytes()

    async def check() -> str:
        async with httpx.AsyncClient(timeout=10.0) as http:
            verifier = build_verifier(
                provider, secret or [], settings, google_keys=GoogleSigningKeys(http, clock=system_clock)
            )
            verified = await verifier.verify(headers, body, now if now is not None else system_clock())
        return f"valid ({verified.scheme}{f', delivery {verified.delivery_id}' if verified.delivery_id else ''})"

    try:
        typer.echo(asyncio.run(check()))
    except (SignatureError, ConfigError, RetryableError) as exc:
        typer.echo(f"invalid: {exc}")
        raise typer.Exit(1) from None
