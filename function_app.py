"""The five Azure Functions of Castiel sync. Each decodes its trigger, calls one service, maps the outcome.

Nothing is read from the settings at import: the queue names are binding expressions the host resolves from the app
settings, and the settings are validated when the runtime is first built. One invalid setting then fails each
invocation with its reason (the webhook answers 503, so the provider retries) instead of every function failing to
load.
"""

import azure.functions as func
import azurefunctions.extensions.bindings.servicebus as servicebus

from castiel import triggers
from castiel.errors import ConfigError
from castiel.runtime import get_runtime

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
async def sync_scheduler(timer: func.TimerRequest, context: func.Context) -> None:
    with triggers.invocation(context):
        await (await get_runtime()).scheduler.run()


# The SDK-type binding: the message as azure.servicebus's type, and the message actions that settle it (off the host's
# auto-completion), so a PermanentError dead-letters its message with the reason here as under `castiel serve`.
@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SERVICE_BUS_QUEUE%", connection="ServiceBusConnection", auto_complete_messages=False
)
async def sync_inbound_worker(
    msg: servicebus.ServiceBusReceivedMessage, actions: servicebus.ServiceBusMessageActions, context: func.Context
) -> None:
    runtime = await get_runtime()
    queue, max_deliveries = runtime.settings.service_bus_queue, runtime.settings.max_delivery_count
    await triggers.settle(context, msg, actions, runtime.inbound.handle, queue=queue, max_delivery_count=max_deliveries)


@app.service_bus_queue_trigger(
    arg_name="msg",
    queue_name="%SERVICE_BUS_QUEUE_OUTBOUND%",
    connection="ServiceBusConnection",
    auto_complete_messages=False,
)
async def sync_outbound_worker(
    msg: servicebus.ServiceBusReceivedMessage, actions: servicebus.ServiceBusMessageActions, context: func.Context
) -> None:
    runtime = await get_runtime()
    queue, max_deliveries = runtime.settings.service_bus_queue_outbound, runtime.settings.max_delivery_count
    await triggers.settle(
        context, msg, actions, runtime.outbound.handle, queue=queue, max_delivery_count=max_deliveries
    )


@app.timer_trigger(schedule="0 0 */6 * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
async def token_refresher(timer: func.TimerRequest, context: func.Context) -> None:
    with triggers.invocation(context):
        await (await get_runtime()).refresher.run()


@app.route(route="webhooks/{registrationId}/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def webhook_receiver(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    with triggers.invocation(context):
        try:
            runtime = await get_runtime()
        except ConfigError:
            body = '{"error": "service misconfigured; see the logs"}'
            return func.HttpResponse(body, status_code=503, mimetype="application/json")
        return triggers.http_response(await runtime.webhooks.handle(triggers.webhook_request_from(req)))
