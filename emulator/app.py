"""Assembles the stand-in's ASGI apps: the HTTPS app (Entra, Graph, Key Vault, admin) and the identity app."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .admin import AdminApi
from .entra import EntraService
from .errors import ServiceError
from .faults import FaultInjector, FaultMiddleware
from .graph import GraphService
from .keyvault import KeyVaultService
from .state import World
from .tokens import TokenService


@dataclass
class StandIn:
    world: World
    tokens: TokenService
    faults: FaultInjector
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


def build(world: World, tokens: TokenService, seed: dict[str, Any], public_base: str, admin: bool) -> StandIn:
    faults = FaultInjector()
    identity_header = secrets.token_urlsafe(24)
    admin_key = secrets.token_urlsafe(24) if admin else None
    entra = EntraService(world, tokens, public_base, identity_header)
    routes: list[Route] = []
    routes += AdminApi(world, seed, faults, admin_key).routes()
    routes += GraphService(world, tokens, faults).routes()
    routes += KeyVaultService(world, tokens, public_base).routes()
    routes += entra.routes()
    handlers = {ServiceError: _service_error}
    https = Starlette(routes=routes, exception_handlers=handlers)
    # Key Vault's SDK asks for "/secrets/name/"; a slash redirect would be a wrong answer.
    https.router.redirect_slashes = False
    identity = Starlette(routes=entra.identity_routes(), exception_handlers=handlers)
    return StandIn(
        world=world,
        tokens=tokens,
        faults=faults,
        https_app=CollapseSlashes(FaultMiddleware(https, faults)),
        identity_app=FaultMiddleware(identity, faults),
        identity_header=identity_header,
        admin_key=admin_key,
    )
