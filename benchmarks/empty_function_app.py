"""A Functions app whose webhook route does nothing: ``benchmarks.webhooks`` serves it with ``castiel serve`` to show
what the dev host itself costs a request (``func.HttpRequest`` in, invocation bookkeeping and its log line,
``func.HttpResponse`` out), apart from anything the receiver does."""

import azure.functions as func

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="webhooks/{registrationId}/events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
async def webhook_receiver(req: func.HttpRequest) -> func.HttpResponse:
    req.get_body()
    return func.HttpResponse(b'{"accepted":1}', status_code=202, mimetype="application/json")
