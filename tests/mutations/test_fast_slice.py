"""CI's slice of the product mutation suite (the whole list: scripts/mutate).

Every mutant's text must still occur exactly once in its file, so the list cannot rot silently; and
the FAST mutants, whose guards are unit tests only, are each applied to a copy of the project and
must be killed there."""

from __future__ import annotations

import pytest

from .mutants import FAST, MUTANTS, Mutant
from .run import ROOT, baseline, occurrences, run_one

SLICE_TIMEOUT_SECONDS = 120


def test_the_list_holds_the_issues_bugs_and_twenty_more_with_unique_names() -> None:
    names = [m.name for m in MUTANTS]
    assert len(set(names)) == len(names)
    assert len(MUTANTS) >= 27
    assert all(m.guards for m in MUTANTS)
    assert all(all(g.startswith("tests/unit/") for g in m.guards) for m in FAST), "the slice runs unit tests only"


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_mutants_text_occurs_exactly_once(mutant: Mutant) -> None:
    assert occurrences(mutant) == 1, f"{mutant.file} changed: move the mutant with the code it breaks"
    for guard in mutant.guards:
        assert (ROOT / guard.split("::", 1)[0]).is_file(), f"{mutant.name}: no guard file {guard}"


def test_the_fast_mutants_guards_pass_without_a_mutant() -> None:
    passed, summary = baseline(FAST, timeout=SLICE_TIMEOUT_SECONDS)
    assert passed, f"the guards fail on an unmutated copy, so no kill below would mean anything: {summary}"


@pytest.mark.parametrize("mutant", FAST, ids=lambda m: m.name)
def test_each_fast_mutant_is_killed_by_its_guards(mutant: Mutant) -> None:
    outcome = run_one(mutant, timeout=SLICE_TIMEOUT_SECONDS)
    assert outcome.verdict == "killed", f"{mutant.name}: {outcome.verdict} ({outcome.detail})"
