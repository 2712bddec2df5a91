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


@pytest.fixture(scope="module")
def clock_stand_in() -> Iterator[StandIn]:
    """A stand-in of the module's own, for tests that move the directory clock forward.

    The shared one's clock must stay at real time: the product dates new secrets by its own
    clock, and a shared stand-in days ahead would see them start after they end."""
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
