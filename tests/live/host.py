"""A local stand-in for the Functions host's HTTP front: the registered functions over real HTTP.

CI has no Azure Functions host, so to run `HttpTarget` against the stand-in this process serves the
HTTP-triggered functions of function_app.py the way the host does: routes under /api from the
registered triggers, a function key required (`x-functions-key` header or `code` query, else 401, as
https://learn.microsoft.com/azure/azure-functions/function-keys-how-to describes), the app's settings
from the environment, and its services built once per process on first use. It prints one JSON line,
{"url": ...}, when it accepts connections.

    LIVE_HOST_FUNCTION_KEY=... KEY_VAULT_URL=... python -m tests.live.host
"""

from __future__ import annotations

import hmac
import json
import os
import socket
import sys
from urllib.parse import urlsplit

import azure.functions as func
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.functions.conftest import FUNCTIONS
from tests.live.target import route

KEY = os.environ.get("LIVE_HOST_FUNCTION_KEY", "")


async def serve(request: Request) -> Response:
    given = request.headers.get("x-functions-key") or request.query_params.get("code") or ""
    if not KEY or not hmac.compare_digest(given.encode(), KEY.encode()):
        return Response(status_code=401)
    path = request.path_params["path"]
    found = route(request.method, path)
    if found is None:
        return Response(status_code=404)
    function, route_params = found
    query = urlsplit(str(request.url)).query
    call = func.HttpRequest(
        request.method,
        f"{request.base_url}api/{path}" + (f"?{query}" if query else ""),
        headers=dict(request.headers),
        params=dict(request.query_params),
        route_params=route_params,
        body=await request.body(),
    )
    response = await FUNCTIONS[function](call)
    assert isinstance(response, func.HttpResponse)
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-type"}
    media_type = f"{response.mimetype}; charset={response.charset}" if response.mimetype else None
    return Response(response.get_body(), response.status_code, headers, media_type)


def main() -> None:
    app = Starlette(routes=[Route("/api/{path:path}", serve, methods=["GET", "PUT", "POST", "DELETE"])])
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(128)  # connections queue from here on, before uvicorn accepts them
    port = listener.getsockname()[1]
    print(json.dumps({"url": f"http://127.0.0.1:{port}", "pid": os.getpid()}), flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    server.run(sockets=[listener])
    sys.exit(0)


if __name__ == "__main__":
    main()
