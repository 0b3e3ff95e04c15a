"""The five Azure Functions of Castiel sync. Each decodes its trigger, calls one service, maps the outcome.

Nothing is read from the settings at import: the queue names are binding expressions the host resolves from the app
settings, and the settings are validated when the runtime is first built. One invalid setting then fails each
invocation with its reason (the webhook answers 503, so the provider retries) instead of every function failing to
load.
"""

import azure.functions as func

from castiel import triggers
from castiel.errors import ConfigError
from castiel.runtime import get_runtime

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
async def sync_scheduler(timer: func.TimerRequest, context: func.Context) -> None:
    with triggers.invocation(context):
        await (await get_runtime()).scheduler.run()


@app.service_bus_queue_trigger(arg_name="msg", queue_name="%SERVICE_BUS_QUEUE%", connection="ServiceBusConnection")
async def sync_inbound_worker(msg: func.ServiceBusMessage, context: func.Context) -> None:
    with triggers.message_invocation(context, msg):
        runtime = await get_runtime()
        await runtime.inbound.handle(triggers.delivery_from(msg, runtime.settings.service_bus_queue))


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name="%SERVICE_BUS_QUEUE_OUTBOUND%", connection="ServiceBusConnection"
)
async def sync_outbound_worker(msg: func.ServiceBusMessage, context: func.Context) -> None:
    with triggers.message_invocation(context, msg):
        runtime = await get_runtime()
        await runtime.outbound.handle(triggers.delivery_from(msg, runtime.settings.service_bus_queue_outbound))


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
