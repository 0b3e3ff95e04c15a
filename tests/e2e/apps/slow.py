"""A queue-triggered function that works for the seconds its body asks, then records the message id as done."""

import asyncio

import azure.functions as func
import orjson

from castiel.settings import get_settings

app = func.FunctionApp()

COMPLETED_FILE = "completed.txt"


def _record(message_id: str) -> None:
    with (get_settings().data_dir / COMPLETED_FILE).open("a") as done:
        done.write(f"{message_id}\n")


@app.service_bus_queue_trigger(arg_name="msg", queue_name="e2e-slow", connection="ServiceBusConnection")
async def slow_worker(msg: func.ServiceBusMessage) -> None:
    await asyncio.sleep(float(orjson.loads(msg.get_body())["seconds"]))
    await asyncio.to_thread(_record, msg.message_id or "")
