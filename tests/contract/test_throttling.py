"""The Directory contract while Graph throttles (429 with Retry-After) for longer than the SDK's own retries:
which of the project's answers each port call gives.

- add_password runs without SDK retries (a retried addPassword could mint a second secret), so one 429
  is `Throttled` with Graph's Retry-After;
- a grant's 429 comes per item of the $batch: the role is pending, with the longest Retry-After;
- a read is retried by the SDK (three times, waiting Retry-After each time) and then is
  `UpstreamUnavailable` with status 429 and the Retry-After. Not `Throttled`: that one error is
  add_password's alone.

The stand-in throttles through its fault rules; the fake through its `throttle` switch."""

from __future__ import annotations

import pytest

from shared.domain.errors import UpstreamUnavailable
from shared.domain.ports import Throttled
from tests.contract.conftest import ROLE_VALUES, Ports, graph_api, in_days


async def test_a_throttled_add_password_is_throttled_with_graphs_retry_after_and_mints_nothing(ports: Ports) -> None:
    unique = ports.unique("app")
    app, _ = await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Throttled"))
    ports.throttle("add_password", retry_after=7)

    with pytest.raises(Throttled) as throttled:
        await ports.directory.add_password(ports.tenant_id, app.object_id, "throttled", in_days(30))

    assert (throttled.value.service, throttled.value.retry_after) == ("graph", 7)
    found = await ports.directory.find_application(ports.tenant_id, unique)
    assert found is not None and found.passwords == ()


async def test_a_throttled_grant_is_pending_with_graphs_retry_after(ports: Ports) -> None:
    app, _ = await ports.directory.upsert_application(ports.tenant_id, ports.unique("app"), ports.spec("Throttled"))
    principal, _ = await ports.directory.upsert_service_principal(ports.tenant_id, app.app_id, app_is_new=True)
    graph = await graph_api(ports)
    roles = [(graph.object_id, graph.roles_by_value[value]) for value in ROLE_VALUES]
    ports.throttle("grant", retry_after=9)

    result = await ports.directory.grant(ports.tenant_id, principal, roles)

    assert (result.granted, result.pending, result.retry_after) == ((), tuple(r for _, r in roles), 9)
    assert await ports.directory.assignments(ports.tenant_id, principal) == []


async def test_a_read_throttled_past_the_sdks_retries_is_upstream_unavailable_429(ports: Ports) -> None:
    unique = ports.unique("app")
    await ports.directory.upsert_application(ports.tenant_id, unique, ports.spec("Throttled"))
    ports.throttle("find_application", retry_after=1)  # the SDK waits 1 s before each of its 3 retries

    with pytest.raises(UpstreamUnavailable) as unavailable:
        await ports.directory.find_application(ports.tenant_id, unique)

    error = unavailable.value
    assert (error.service, error.upstream_status, error.upstream_code, error.retry_after) == (
        "graph", 429, "TooManyRequests", 1,
    )  # fmt: skip
    assert error.status == 503
