"""Assembles the stand-in's ASGI apps: the HTTPS app (Entra, Graph, Key Vault, ARM, Log Analytics, Event Grid, admin)
and the identity app."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .admin import AdminApi
from .arm import ArmService
from .arm_rbac import arm_error
from .entra import EntraService
from .errors import ServiceError, graph_error, vault_error
from .event_grid import EventGridService, event_grid_error
from .faults import FaultInjector, FaultMiddleware, RequestLog, service_of
from .graph import GraphService
from .keyvault import KeyVaultService
from .keyvault_certificates import KeyVaultCertificates
from .log_analytics import LogAnalyticsService, la_error
from .state import World
from .tokens import TokenService

logger = logging.getLogger(__name__)


@dataclass
class StandIn:
    world: World
    tokens: TokenService
    faults: FaultInjector
    requests: RequestLog
    https_app: ASGIApp
    identity_app: ASGIApp
    identity_header: str
    admin_key: str | None


class CollapseSlashes:
    """Graph tolerates the double slash msgraph-sdk can produce (`/v1.0//applications`); so do we."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and "//" in scope["path"]:
            scope = dict(scope)
            path = scope["path"]
            while "//" in path:
                path = path.replace("//", "/")
            scope["path"] = path
            scope["raw_path"] = path.encode()
        await self.app(scope, receive, send)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)
    return exc.response


def _no_route(status: int, service: str, method: str, path: str) -> Response:
    """Unknown paths and methods answered in the addressed service's own error shape."""
    if service == "graph":
        return graph_error(None, status, "BadRequest", f"Resource not found for the segment '{path}'.").response
    if service == "vault":
        return vault_error(
            status, "BadParameter", f"The request URI {path} with method {method} is not supported."
        ).response
    if service == "arm":
        return arm_error(
            None, status, "InvalidRequestUri", f"The request URI {path} with method {method} is not supported."
        ).response
    if service == "loganalytics":
        # "Path not found" on https://learn.microsoft.com/azure/azure-monitor/logs/api/errors
        return la_error(404, "PathNotFoundError", "The requested path does not exist").response
    if service == "eventgrid":
        return event_grid_error(
            status, "NotFound", f"The request URI {path} with method {method} is not supported."
        ).response
    return JSONResponse({"error": "not_found" if status == 404 else "method_not_allowed"}, status_code=status)


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code in (404, 405):
        return _no_route(exc.status_code, service_of(request.url.path), request.method, request.url.path)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code)


async def _unexpected(request: Request, exc: Exception) -> Response:
    """A bug in the stand-in still answers in the service's shape, and says so in the log."""
    logger.error("unhandled error for %s %s", request.method, request.url.path, exc_info=exc)
    service = service_of(request.url.path)
    if service == "graph":
        return graph_error(None, 500, "generalException", "An unexpected error occurred.").response
    if service == "vault":
        return vault_error(500, "InternalServerError", "An unexpected error occurred.").response
    if service == "arm":
        return arm_error(None, 500, "InternalServerError", "An unexpected error occurred.").response
    if service == "loganalytics":
        return la_error(500, "InternalServerError", "An unexpected error occurred.").response
    if service == "eventgrid":
        return event_grid_error(500, "InternalServerError", "An unexpected error occurred.").response
    return JSONResponse({"error": "server_error"}, status_code=500)


def build(world: World, tokens: TokenService, seed: dict[str, Any], public_base: str, admin: bool) -> StandIn:
    faults = FaultInjector()
    requests = RequestLog()
    identity_header = secrets.token_urlsafe(24)
    admin_key = secrets.token_urlsafe(24) if admin else None
    entra = EntraService(world, tokens, public_base, identity_header)
    routes: list[Route] = []
    routes += AdminApi(world, seed, faults, admin_key, requests).routes()
    routes += GraphService(world, tokens, faults).routes()
    vault = KeyVaultService(world, tokens, public_base)
    routes += vault.routes()
    routes += KeyVaultCertificates(vault).routes()
    routes += ArmService(world, tokens).routes()
    routes += LogAnalyticsService(world, tokens).routes()
    routes += EventGridService(world, tokens).routes()
    routes += entra.routes()
    handlers = {ServiceError: _service_error, HTTPException: _http_exception, Exception: _unexpected}
    https = Starlette(routes=routes, exception_handlers=handlers)
    # Key Vault's SDKs ask for "/secrets/name/" and "/certificates/name/"; a slash redirect would be a wrong answer.
    https.router.redirect_slashes = False
    identity = Starlette(routes=entra.identity_routes(), exception_handlers=handlers)
    return StandIn(
        world=world,
        tokens=tokens,
        faults=faults,
        requests=requests,
        https_app=CollapseSlashes(FaultMiddleware(https, faults, requests)),
        identity_app=FaultMiddleware(identity, faults, requests),
        identity_header=identity_header,
        admin_key=admin_key,
    )
