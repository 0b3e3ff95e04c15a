"""GitHub: ``X-GitHub-Event`` names the event, ``action`` what happened, ``X-GitHub-Delivery`` the delivery.

Synced: ``issues``, ``issue_comment`` and ``pull_request``. ``ping`` is the handshake; every other event (``star``,
``push`` …) is understood and left alone. The external id is GitHub's numeric ``id`` (global per kind of object); the
repository and ``number`` travel in ``changes`` because GitHub's API addresses issues by them. Payloads may come as
JSON or, when the hook is configured so, as ``application/x-www-form-urlencoded`` with the JSON in ``payload``.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import parse_qs

from castiel.errors import InvalidMessage
from castiel.models import Operation, OutboundChange
from castiel.webhooks.parsers.base import (
    Handshake,
    JsonObject,
    ParsedDelivery,
    WebhookDelivery,
    as_object,
    decode_json,
    identifier,
    names_of,
    optional_iso_time,
    optional_object,
    optional_str,
    pick,
    required_object,
    required_str,
)

_PING_RESPONSE = b'{"ok":true}'

_FORM = "application/x-www-form-urlencoded"


def parse(delivery: WebhookDelivery) -> ParsedDelivery:
    """Parse one GitHub delivery."""
    event = delivery.header("x-github-event")
    if not event:
        raise InvalidMessage("X-GitHub-Event header is missing")
    delivery_id = delivery.header("x-github-delivery")
    payload = _payload(delivery)
    if event == "ping":
        return ParsedDelivery(
            delivery_id=delivery_id,
            handshake=Handshake("github_ping", 200, _PING_RESPONSE, "application/json"),
        )
    handler = _HANDLERS.get(event)
    if handler is None:
        return ParsedDelivery(delivery_id=delivery_id)
    action = required_str(payload, "action")
    return ParsedDelivery(changes=[handler(delivery, payload, action)], delivery_id=delivery_id)


def _payload(delivery: WebhookDelivery) -> JsonObject:
    content_type = (delivery.header("content-type") or "").partition(";")[0].strip().lower()
    if content_type != _FORM:
        return as_object(decode_json(delivery.body), "body")
    try:
        form = parse_qs(delivery.body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidMessage("form body is not UTF-8") from exc
    if "payload" not in form:
        raise InvalidMessage("form body has no payload field")
    return as_object(decode_json(form["payload"][0], "payload"), "payload")


def _repository(payload: JsonObject) -> JsonObject:
    repository = optional_object(payload, "repository")
    return {} if repository is None else {"repository": optional_str(repository, "full_name", "repository")}


def _login(obj: JsonObject, key: str, where: str) -> JsonObject:
    user = optional_object(obj, key, where)
    return {} if user is None else {"author": optional_str(user, "login", f"{where}.{key}")}


def _issue(delivery: WebhookDelivery, payload: JsonObject, action: str) -> OutboundChange:
    issue = required_object(payload, "issue")
    milestone = optional_object(issue, "milestone", "issue")
    changes = {
        **pick(issue, "number", "title", "body", "state", "state_reason", "html_url", "created_at", "closed_at"),
        "labels": names_of(issue, "labels", "name", "issue"),
        "assignees": names_of(issue, "assignees", "login", "issue"),
        "milestone": None if milestone is None else optional_str(milestone, "title", "issue.milestone"),
        **_login(issue, "user", "issue"),
        **_repository(payload),
    }
    operation = {"opened": Operation.CREATE, "deleted": Operation.DELETE}.get(action, Operation.UPDATE)
    return _change(delivery, "issue", issue, "issue", operation, changes, f"issues.{action}")


def _comment(delivery: WebhookDelivery, payload: JsonObject, action: str) -> OutboundChange:
    comment = required_object(payload, "comment")
    issue = optional_object(payload, "issue") or {}
    changes = {
        **pick(comment, "body", "html_url", "created_at"),
        **({"issue_number": issue["number"]} if "number" in issue else {}),
        **_login(comment, "user", "comment"),
        **_repository(payload),
    }
    operation = _COMMENT_OPERATIONS.get(action)
    if operation is None:
        raise InvalidMessage(f"issue_comment action {action[:64]!r} is not created, edited or deleted")
    return _change(delivery, "comment", comment, "comment", operation, changes, f"issue_comment.{action}")


_COMMENT_OPERATIONS = {"created": Operation.CREATE, "edited": Operation.UPDATE, "deleted": Operation.DELETE}


def _pull_request(delivery: WebhookDelivery, payload: JsonObject, action: str) -> OutboundChange:
    pull = required_object(payload, "pull_request")
    head = optional_object(pull, "head", "pull_request") or {}
    base = optional_object(pull, "base", "pull_request") or {}
    changes = {
        **pick(pull, "number", "title", "body", "state", "draft", "merged", "merged_at", "closed_at", "html_url"),
        "head": optional_str(head, "ref", "pull_request.head"),
        "base": optional_str(base, "ref", "pull_request.base"),
        "labels": names_of(pull, "labels", "name", "pull_request"),
        "assignees": names_of(pull, "assignees", "login", "pull_request"),
        **_login(pull, "user", "pull_request"),
        **_repository(payload),
    }
    # A pull request cannot be deleted on GitHub: every action after "opened" changes an existing one.
    operation = Operation.CREATE if action == "opened" else Operation.UPDATE
    return _change(delivery, "pull_request", pull, "pull_request", operation, changes, f"pull_request.{action}")


def _change(
    delivery: WebhookDelivery,
    entity_type: str,
    obj: JsonObject,
    where: str,
    operation: Operation,
    changes: JsonObject,
    event_type: str,
) -> OutboundChange:
    # GitHub sends no deletion time; the last update before it would order the delete before later local edits.
    updated_at = optional_iso_time(obj, "updated_at", where)
    return delivery.change(
        entity_type=entity_type,
        external_id=identifier(obj, "id", where),
        operation=operation,
        changes=changes,
        event_type=event_type,
        timestamp=None if operation is Operation.DELETE else updated_at,
    )


_HANDLERS: dict[str, Callable[[WebhookDelivery, JsonObject, str], OutboundChange]] = {
    "issues": _issue,
    "issue_comment": _comment,
    "pull_request": _pull_request,
}
