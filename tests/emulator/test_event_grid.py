"""The stand-in's Event Grid topic (emulator/event_grid.py, ledger EG1-EG4): what it accepts and what it refuses,
with the managed identity's real token through httpx."""

from __future__ import annotations

import json
import ssl
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from azure.identity import ManagedIdentityCredential

from emulator.launcher import StandIn

BATCH = "application/cloudevents-batch+json; charset=utf-8"


def event(**overrides: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/test", "type": "Test.Happened"} | overrides


@pytest.fixture
def topic(clean_faults: StandIn) -> Iterator[StandIn]:
    clean_faults.admin("DELETE", "/eventgrid/events")
    yield clean_faults
    clean_faults.admin("PUT", "/eventgrid/senders", {"objectIds": None})


def post(
    stand_in: StandIn, body: Any, content_type: str = BATCH, token: str | None = "", **query: str
) -> httpx.Response:
    if token == "":
        token = ManagedIdentityCredential().get_token("https://eventgrid.azure.net/.default").token
    headers = {"content-type": content_type} | ({"authorization": f"Bearer {token}"} if token else {})
    with httpx.Client(verify=ssl.create_default_context(cafile=stand_in.ca_bundle)) as client:
        return client.post(
            stand_in.event_grid_endpoint, params={"api-version": "2018-01-01"} | query, headers=headers,
            content=json.dumps(body),
        )  # fmt: skip


def test_a_batch_from_a_sender_is_accepted_with_an_empty_200_and_recorded(topic: StandIn) -> None:
    sent = [event(), event()]
    answer = post(topic, sent)
    assert answer.status_code == 200 and answer.content == b""
    assert topic.admin("GET", "/eventgrid/events")["value"] == sent
    single = post(topic, event(), content_type="application/cloudevents+json")
    assert single.status_code == 200


def test_no_token_is_401_and_a_principal_without_the_sender_role_is_403(topic: StandIn) -> None:
    assert post(topic, [event()], token=None).status_code == 401
    topic.admin("PUT", "/eventgrid/senders", {"objectIds": [str(uuid.uuid4())]})
    refused = post(topic, [event()])
    assert refused.status_code == 403 and refused.json()["error"]["code"]
    assert topic.admin("GET", "/eventgrid/events")["value"] == []


@pytest.mark.parametrize(
    ("body", "content_type", "query"),
    [
        ([event(specversion="0.3")], BATCH, {}),
        ([{"id": "1", "source": "/s"}], BATCH, {}),  # no type
        (event(), BATCH, {}),  # an object sent as a batch
        ([event()], "application/json", {}),
        ([event()], BATCH, {"api-version": "2099-01-01"}),
    ],
)
def test_a_malformed_publish_is_400(topic: StandIn, body: Any, content_type: str, query: dict[str, str]) -> None:
    assert post(topic, body, content_type, **query).status_code == 400


def test_a_request_over_one_megabyte_is_413(topic: StandIn) -> None:
    assert post(topic, [event(data="x" * (1024 * 1024))]).status_code == 413
