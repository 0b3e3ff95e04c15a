"""The five Azure Functions of Castiel sync. Each decodes its trigger, calls one service, maps the outcome."""

import azure.functions as func

from castiel import triggers
from castiel.runtime import get_runtime
from castiel.settings import get_settings

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
settings = get_settings()


@app.timer_trigger(schedule="0 0 * * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
async def sync_scheduler(timer: func.TimerRequest) -> None:
    await (await get_runtime()).scheduler.run()


@app.service_bus_queue_trigger(arg_name="msg", queue_name=settings.service_bus_queue, connection="ServiceBusConnection")
async def sync_inbound_worker(msg: func.ServiceBusMessage) -> None:
    runtime = await get_runtime()
    await runtime.inbound.handle(triggers.delivery_from(msg, runtime.settings.service_bus_queue))


@app.service_bus_queue_trigger(
    arg_name="msg", queue_name=settings.service_bus_queue_outbound, connection="ServiceBusConnection"
)
async def sync_outbound_worker(msg: func.ServiceBusMessage) -> None:
    runtime = await get_runtime()
    await runtime.outbound.handle(triggers.delivery_from(msg, runtime.settings.service_bus_queue_outbound))


@app.timer_trigger(schedule="0 0 */6 * * *", arg_name="timer", run_on_startup=False, use_monitor=True)
async def token_refresher(timer: func.TimerRequest) -> None:
    await (await get_runtime()).refresher.run()


@app.route(route="webhooks/{registrationId}/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    runtime = await get_runtime()
    return triggers.http_response(await runtime.webhooks.handle(triggers.webhook_request_from(req)))
