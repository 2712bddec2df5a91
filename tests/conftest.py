"""Fixtures shared by every test layer: the stand-in process, started once per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from emulator.launcher import StandIn, start_stand_in
from tests.azurite import Azurite, start_azurite


@pytest.fixture(scope="session")
def stand_in() -> Iterator[StandIn]:
    instance = start_stand_in()
    try:
        yield instance
    finally:
        instance.stop()


@pytest.fixture
def clean_faults(stand_in: StandIn) -> Iterator[StandIn]:
    """The stand-in with no faults, and none left behind for the next test."""
    stand_in.clear_faults()
    yield stand_in
    stand_in.clear_faults()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    instance = start_azurite()
    try:
        yield instance
    finally:
        instance.stop()
