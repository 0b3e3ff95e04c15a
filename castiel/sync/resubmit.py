"""Re-send dead-lettered messages to their queue once an operator has fixed the cause (``castiel queue resubmit``)."""

from __future__ import annotations

from castiel.ports import MessageQueue, OutgoingMessage, PropertyValue
from castiel.sync.delivery import DEFERRAL_COUNT, RESUBMITTED_REASON, RETRY_COUNT
from castiel.telemetry import log_event

_BATCH = 50


async def resubmit_dead_letters(queue: MessageQueue, name: str, *, max_messages: int) -> int:
    """Move up to ``max_messages`` dead letters of ``name`` back to it, retry counts reset; returns how many.

    Each copy carries ``RESUBMITTED_REASON``, so the inbound worker runs its task again even if the task had failed.
    Each copy is sent before its dead letter is completed, under an id derived from the dead letter's sequence
    number, so a crash in between re-sends nothing twice (duplicate detection) and loses nothing.
    """
    moved = 0
    while moved < max_messages:
        batch = await queue.receive(name, max_messages=min(_BATCH, max_messages - moved), sub_queue="dead_letter")
        if not batch:
            break
        for message in batch:
            properties: dict[str, PropertyValue] = {
                key: value
                for key, value in message.application_properties.items()
                if key not in (RETRY_COUNT, DEFERRAL_COUNT)
            }
            properties[RESUBMITTED_REASON] = (message.dead_letter_reason or "")[:200]
            copy = OutgoingMessage(
                body=message.body,
                message_id=f"{message.message_id}:resubmit{message.sequence_number}",
                correlation_id=message.correlation_id,
                application_properties=properties,
            )
            await queue.send(name, [copy])
            await queue.complete(name, message)
            moved += 1
            log_event("queue.resubmitted", queue=name, message_id=message.message_id, reason=message.dead_letter_reason)
    return moved
