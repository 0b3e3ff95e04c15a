"""How a queue-triggered invocation's message is settled, decided from what the function did (DESIGN §7).

One decision for both hosts: the Functions host, where the queue functions settle through the Service Bus
SDK-type binding's message actions (``castiel/triggers.py``), and the dev host, which applies it to its queue
(``castiel/devhost/queues.py``) or hands the function the same message actions over the embedded queue.

- returned → complete (only then: a message is never completed before its function finished);
- raised a ``PermanentError`` (``InvalidMessage`` included) → dead-letter at once, the exception as the reason;
- raised anything else (a bug) → abandon for redelivery, or dead-letter with the exception as the reason on the
  queue's last allowed delivery (better than Service Bus's bare ``MaxDeliveryCountExceeded``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from castiel.errors import PermanentError
from castiel.telemetry.outcomes import dead_lettered

MAX_REASON_CHARS = 500
MAX_DESCRIPTION_CHARS = 2000


class SettlementAction(StrEnum):
    """What happens to the message."""

    COMPLETE = "complete"
    ABANDON = "abandon"
    DEAD_LETTER = "dead_letter"


@dataclass(frozen=True, slots=True)
class Settlement:
    """An action, and for a dead letter its reason and description (what an operator reads in the queue)."""

    action: SettlementAction
    reason: str | None = None
    description: str | None = None


def typed_message(error: BaseException) -> str:
    """``<ExceptionType>: <message>``, the form used in log lines and dead-letter reasons."""
    return f"{type(error).__name__}: {error}"


def settlement_for(
    error: BaseException | None, *, function: str, queue: str, delivery_count: int, max_delivery_count: int
) -> Settlement:
    """The settlement of one delivery of ``function``'s message after it returned (``error`` None) or raised.

    A bug's dead letter is counted here (``dead_lettered``, reason ``max_delivery_count``); a permanent error's was
    counted where the worker decided it (``castiel/sync/delivery.py``).
    """
    if error is None:
        return Settlement(SettlementAction.COMPLETE)
    if isinstance(error, PermanentError):
        description = f"{function} raised a permanent error on delivery {delivery_count}"
    elif delivery_count >= max_delivery_count:
        description = f"{function} failed on delivery {delivery_count}, the max delivery count ({max_delivery_count})"
        dead_lettered(queue=queue, reason="max_delivery_count")
    else:
        return Settlement(SettlementAction.ABANDON)
    return Settlement(
        SettlementAction.DEAD_LETTER,
        reason=typed_message(error)[:MAX_REASON_CHARS],
        description=f"{description}: {typed_message(error)}"[:MAX_DESCRIPTION_CHARS],
    )
