"""``castiel queue``: queue depths, messages, dead letters and their resubmission."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from castiel.cli.common import JsonFlag, echo_items, echo_json, run, settings, with_queue
from castiel.models import format_utc
from castiel.ports import MessageQueue, ReceivedMessage
from castiel.settings import Settings
from castiel.sync.resubmit import resubmit_dead_letters

queue_app = typer.Typer(no_args_is_help=True, help="Queues and their dead letters.")


def queue_names(settings: Settings, queue: str | None) -> list[str]:
    """The one queue asked for, or both of the app's queues; a usage error for a queue the app does not have."""
    known = [settings.service_bus_queue, settings.service_bus_queue_outbound]
    if queue is None:
        return known
    if queue not in known:
        raise typer.BadParameter(f"no queue {queue!r}: the queues are {' and '.join(known)}", param_hint="QUEUE")
    return [queue]


@queue_app.command("stats")
def queue_stats(
    queue: Annotated[str | None, typer.Argument(help="One queue (default: both).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Active, scheduled and dead-lettered counts per queue."""

    names = queue_names(settings(), queue)

    async def stats(mq: MessageQueue, _: Settings) -> dict[str, dict[str, int]]:
        result = {}
        for name in names:
            counts = await mq.stats(name)
            result[name] = {
                "active": counts.active,
                "scheduled": counts.scheduled,
                "dead_lettered": counts.dead_lettered,
            }
        return result

    result = run(with_queue(stats))
    if as_json:
        echo_json(result)
        return
    for name, counts in result.items():
        typer.echo(f"{name:<20} " + "  ".join(f"{key}={value}" for key, value in counts.items()))


def _message_json(message: ReceivedMessage) -> dict[str, Any]:
    body: Any
    try:
        body = json.loads(message.body)
    except ValueError:
        body = message.body.decode("utf-8", errors="replace")
    return {
        "messageId": message.message_id,
        "sequenceNumber": message.sequence_number,
        "deliveryCount": message.delivery_count,
        "enqueuedTime": format_utc(message.enqueued_time),
        "scheduledEnqueueTime": format_utc(message.scheduled_enqueue_time) if message.scheduled_enqueue_time else None,
        "correlationId": message.correlation_id,
        "applicationProperties": dict(message.application_properties),
        "deadLetterReason": message.dead_letter_reason,
        "deadLetterDescription": message.dead_letter_description,
        "body": body,
    }


def _message_line(message: dict[str, Any]) -> str:
    body = json.dumps(message["body"], separators=(",", ":"))
    when = f" scheduled={message['scheduledEnqueueTime']}" if message["scheduledEnqueueTime"] else ""
    reason = f" reason={message['deadLetterReason']!r}" if message["deadLetterReason"] else ""
    return (
        f"#{message['sequenceNumber']} {message['messageId']} deliveries={message['deliveryCount']}"
        f" enqueued={message['enqueuedTime']}{when}{reason} body={_shorten(body)}"
    )


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else f"{text[: limit - 1]}…"


def _peek(queue: str, max_messages: int, dead_letter: bool, as_json: bool) -> None:
    (name,) = queue_names(settings(), queue)

    async def peek(mq: MessageQueue, _: Settings) -> list[ReceivedMessage]:
        return await mq.peek(name, max_messages=max_messages, sub_queue="dead_letter" if dead_letter else None)

    echo_items([_message_json(message) for message in run(with_queue(peek))], as_json, _message_line)


@queue_app.command("peek")
def queue_peek(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", min=1, help="How many.")] = 10,
    dead_letter: Annotated[bool, typer.Option("--dead-letter", help="Peek the dead-letter sub-queue.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Show messages without locking them, one line each (``--json``: an array with their bodies)."""
    _peek(queue, max_messages, dead_letter, as_json)


@queue_app.command("dead-letters")
def queue_dead_letters(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", min=1, help="How many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Show dead-lettered messages with their reasons, one line each (``--json``: an array)."""
    _peek(queue, max_messages, True, as_json)


@queue_app.command("resubmit")
def queue_resubmit(
    queue: Annotated[str, typer.Argument(help="Queue name.")],
    max_messages: Annotated[int, typer.Option("--max", min=1, help="At most this many.")] = 100,
) -> None:
    """Send dead-lettered messages back to their queue (retry counts reset), removing them from the dead letters."""
    (name,) = queue_names(settings(), queue)
    count = run(with_queue(lambda mq, _: resubmit_dead_letters(mq, name, max_messages=max_messages)))
    typer.echo(f"resubmitted {count} message(s) to {queue}")
