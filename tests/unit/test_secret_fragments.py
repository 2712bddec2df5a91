"""No part of a secret reaches a log record or a result: not the text, and not most of it either.

tests/unit/test_onboarding.py searches for each whole secret; a log line holding all but a few of its
characters (a "masked" secret that is not) would pass that search. Here every 10-character piece of
each secret minted is searched for (issue 21's mutant: onboarding logs all but the first 6 characters).
"""

from __future__ import annotations

import json
import logging

import pytest

from shared.domain.ports import Throttled
from shared.entrypoints.presenters import onboard_json
from shared.usecases.onboarding import OnboardRequest, Outcome
from tests.fakes import TENANT, make_onboarding

PIECE = 10  # long enough that a random match is out of the question, short enough to catch a slice


def pieces(text: str) -> set[str]:
    return {text[i : i + PIECE] for i in range(len(text) - PIECE + 1)}


async def test_no_ten_characters_of_a_secret_reach_a_log_record_or_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    h = make_onboarding()
    h.directory.fail_next("add_password", Throttled("graph", 1))
    h.checker.not_replicated_for(2)
    progress: list[str] = []

    result = await h.onboarding.onboard(
        OnboardRequest(TENANT, "m365-defender"), progress=lambda step, detail: progress.append(f"{step} {detail}")
    )
    again = await h.onboarding.onboard(OnboardRequest(TENANT, "m365-defender"))

    assert result.outcome is Outcome.CREATED and again.outcome is Outcome.COMPLETE
    secrets = [p.text for p in h.directory.minted]
    assert secrets and all(len(s) > 2 * PIECE for s in secrets)
    assert caplog.records
    searched = [" ".join((r.getMessage(), repr(r.args), str(r.msg), repr(vars(r)))) for r in caplog.records] + [
        json.dumps([onboard_json(result), onboard_json(again), progress])
    ]
    for text in secrets:
        for piece in pieces(text):
            leaked = [s for s in searched if piece in s]
            assert not leaked, f"{PIECE} characters of a secret in: {leaked[0][:300]!r}"
