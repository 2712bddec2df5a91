"""While Entra replicates a new secret the PUT answers 202 with Retry-After; the same PUT again converges.

Real Entra does this on most first onboardings; the stand-in does it when told to lag. Stand-in only:
a real tenant cannot be made to lag on demand, and its flows already take this path when it does.
"""

from __future__ import annotations

import pytest

from tests.live.target import Target, World

INTEGRATION = "sentinel"  # not the one the other flows use: this registration is this test's alone


async def test_a_put_answered_202_is_repeated_after_retry_after_until_it_converges(
    target: Target, world: World
) -> None:
    if world.stand_in is None:
        pytest.skip("needs a directory that lags on demand: the stand-in")
    # Longer than the app waits for a new secret to work (VERIFY_TIMEOUT_SECONDS, 1 s in the stand-in's
    # world), shorter than the Retry-After it then answers (5 s).
    world.stand_in.set_faults(password=3000)
    try:
        answers = await target.onboard(world.tenant, INTEGRATION)
    finally:
        world.stand_in.clear_faults()
    try:
        first, last = answers[0], answers[-1]
        assert first.status == 202 and first.retry_after() >= 1, str(first)
        assert first.body["outcome"] == "pending" and first.body["credential"]["verified"] is False
        assert last.status == 200 and last.body["outcome"] == "updated", str(last)
        assert last.body["credential"]["verified"] is True and last.body["drift"] == []
        assert last.body["credential"]["keyId"] == first.body["credential"]["keyId"]  # the same secret, proven
    finally:
        assert not await target.cleanup([(world.tenant, INTEGRATION)])
