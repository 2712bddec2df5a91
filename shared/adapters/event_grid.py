"""Publishing events to the Event Grid topic (azure-eventgrid's basic publisher, CloudEvents 1.0), signed in as this
service's managed identity, which holds EventGrid Data Sender on that topic only (infra/app/events.bicep).

The SDK sends a batch as `application/cloudevents-batch+json` to the topic endpoint with a token for
https://eventgrid.azure.net/.default (https://learn.microsoft.com/azure/event-grid/authenticate-with-microsoft-entra-id).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.adapters.azure_core_errors import request_ids
from shared.adapters.tls import azure_transport
from shared.domain.errors import UpstreamError, UpstreamUnavailable, request_ids_text
from shared.domain.events import Event
from shared.settings import Settings

if TYPE_CHECKING:
    from azure.eventgrid.aio import EventGridPublisherClient

logger = logging.getLogger(__name__)
# Event Grid's answers worth trying again later: throttled, or the service's own trouble
# (https://learn.microsoft.com/azure/event-grid/troubleshoot-errors).
# A 401 or 403 (the role not given yet, or not propagated) is a deployment's to fix, not the events' fault: later too.
LATER = frozenset({401, 403, 408, 429, 500, 502, 503, 504})
# The change a request made is answered only after its events are handed over: they never wait long on Event Grid.
CONNECT_SECONDS, READ_SECONDS = 3, 10


class EventGridPublisher:
    def __init__(self, settings: Settings, credential: AsyncTokenCredential) -> None:
        assert settings.event_grid_topic_endpoint is not None
        self._endpoint = settings.event_grid_topic_endpoint
        self._settings = settings
        self._credential = credential
        self._client: EventGridPublisherClient | None = None

    @property
    def client(self) -> EventGridPublisherClient:
        if self._client is None:
            # Imported on first use: only an invocation that has an event to send pays for the package.
            from azure.eventgrid.aio import EventGridPublisherClient

            # No SDK retries: the outbox is the retry. Its default (3 retries, 0.8 s doubling) would hold the
            # request that made the change for about 6 s while Event Grid is down.
            self._client = EventGridPublisherClient(
                self._endpoint, self._credential, retry_total=0, **azure_transport(self._settings.tls_ca_bundle)
            )
        return self._client

    async def publish(self, events: Sequence[Event]) -> None:
        from azure.core.messaging import CloudEvent

        batch: list[Any] = [
            CloudEvent(
                source=e.source, type=e.type, data=e.data, subject=e.subject, id=e.id, time=e.time,
                datacontenttype="application/json",
            )
            for e in events
        ]  # fmt: skip
        try:
            await self.client.send(batch, connection_timeout=CONNECT_SECONDS, read_timeout=READ_SECONDS)
        except (ServiceRequestError, ServiceResponseError) as error:
            logger.info("Event Grid did not answer: %s", type(error).__name__)
            raise UpstreamUnavailable("Event Grid did not answer", "eventgrid", None, type(error).__name__) from error
        except HttpResponseError as error:
            ids = request_ids(error)
            code = error.error.code if error.error is not None else None
            logger.info("Event Grid answered %s %s (%s)", error.status_code, code, request_ids_text(ids))
            kind = UpstreamUnavailable if error.status_code in LATER else UpstreamError
            raise kind(
                "Event Grid did not take the events", "eventgrid", error.status_code, code, upstream_request_ids=ids
            ) from error

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
