"""An Event Grid custom topic's publish endpoint (`POST /api/events?api-version=2018-01-01`), as the product's
azure-eventgrid publisher meets it: CloudEvents 1.0, single or batched, with a Microsoft Entra token.

- The token's audience is https://eventgrid.azure.net and its holder must have EventGrid Data Sender on the topic
  (https://learn.microsoft.com/azure/event-grid/authenticate-with-microsoft-entra-id); without a token, 401.
- `application/cloudevents-batch+json` carries an array, `application/cloudevents+json` one event; each needs
  `specversion` 1.0, `id`, `source` and `type` (https://learn.microsoft.com/azure/event-grid/cloud-event-schema).
- A request is at most 1 MB and an event 1 MB (https://learn.microsoft.com/azure/event-grid/quotas-limits): 413.
- 200 with an empty body on success (the publish page, https://learn.microsoft.com/azure/event-grid/post-to-custom-topic).

Error bodies use `{"error": {"code", "message"}}`; their exact codes are not documented for publishing (ledger EG5,
unknown): the product reads the status only. Accepted events are kept for tests (`GET /_emulator/eventgrid/events`).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import ServiceError
from .state import World
from .tokens import TokenError, TokenService

EVENT_GRID_AUDIENCES = {"https://eventgrid.azure.net", "https://eventgrid.azure.net/"}
MAX_REQUEST_BYTES = 1024 * 1024
BATCH = "application/cloudevents-batch+json"
SINGLE = "application/cloudevents+json"
REQUIRED = ("id", "source", "type", "specversion")


def event_grid_error(status: int, code: str, message: str) -> ServiceError:
    body = {"error": {"code": code, "message": message, "innererror": {"correlationId": str(uuid.uuid4())}}}
    return ServiceError(JSONResponse(body, status_code=status))


class EventGridService:
    def __init__(self, world: World, tokens: TokenService) -> None:
        self.world = world
        self.tokens = tokens

    def routes(self) -> list[Route]:
        return [Route("/api/events", self.publish, methods=["POST"])]

    def _sender(self, request: Request) -> str:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("bearer ") or not header[7:].strip():
            raise event_grid_error(401, "Unauthorized", "The request is not authorized: no credential was given.")
        try:
            caller = self.tokens.verify(header[7:].strip(), EVENT_GRID_AUDIENCES)
        except TokenError as exc:
            raise event_grid_error(401, "Unauthorized", f"The access token is not valid: {exc}") from exc
        senders = self.world.topic.senders
        if senders is None:
            default = self.world.default_managed_identity
            senders = {self.world.managed_identities[default][1]} if default in self.world.managed_identities else set()
        if caller.object_id not in senders:
            raise event_grid_error(
                403, "Forbidden", "The principal does not have the EventGrid Data Sender role on this topic."
            )
        return caller.object_id

    async def publish(self, request: Request) -> Response:
        self._sender(request)
        if request.query_params.get("api-version") != "2018-01-01":
            raise event_grid_error(400, "BadRequest", "The api-version query parameter is missing or not supported.")
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            raise event_grid_error(413, "RequestEntityTooLarge", "The request is larger than 1 MB.")
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            parsed: Any = json.loads(body)
        except ValueError as exc:
            raise event_grid_error(400, "BadRequest", "The body is not JSON.") from exc
        if content_type == BATCH and isinstance(parsed, list):
            events = parsed
        elif content_type == SINGLE and isinstance(parsed, dict):
            events = [parsed]
        else:
            raise event_grid_error(400, "BadRequest", f"Expected {BATCH} (an array) or {SINGLE} (an object).")
        for event in events:
            missing = [name for name in REQUIRED if not isinstance(event, dict) or not event.get(name)]
            if missing or event.get("specversion") != "1.0":
                raise event_grid_error(400, "BadRequest", f"An event lacks {missing or ['specversion 1.0']}.")
        self.world.topic.received.extend(events)
        return Response(status_code=200)
