"""A queue-triggered function that always fails with an unexpected exception (a bug, to the host)."""

import azure.functions as func

app = func.FunctionApp()


@app.service_bus_queue_trigger(arg_name="msg", queue_name="e2e-failing", connection="ServiceBusConnection")
async def always_fails(msg: func.ServiceBusMessage) -> None:
    raise RuntimeError(f"always fails: {msg.message_id}")
