"""The OpenAPI document names every problem type the code can answer with, and no other."""

from __future__ import annotations

from shared.domain.errors import OnboardingError
from shared.entrypoints.openapi import PROBLEM_TYPES


def _every_error(cls: type[OnboardingError]) -> set[type[OnboardingError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _every_error(sub)
    return found


def test_the_documented_problem_types_are_exactly_the_ones_the_code_raises() -> None:
    raised = {error.problem_type for error in _every_error(OnboardingError)}
    assert set(PROBLEM_TYPES) == raised
