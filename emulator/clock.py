"""The stand-in's sense of time: a wall clock tests can move forward, and real monotonic time for lag.

Two clocks on purpose. Credential lifetimes (password end dates, Key Vault `exp`) follow
the *directory clock*, which tests may advance by days to walk a secret through its life
without sleeping. Transport mechanics (access-token `exp`, replication lag, Retry-After)
follow real time, because the Microsoft SDKs on the other side cache tokens and back off
by the real clock; advancing those would only make the SDKs and the stand-in disagree.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta


class DirectoryClock:
    def __init__(self) -> None:
        self.offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> datetime:
        if seconds < 0:
            raise ValueError("the directory clock only moves forward")
        self.offset += timedelta(seconds=seconds)
        return self.now()


def monotonic_ms() -> float:
    return time.monotonic() * 1000.0


def iso(moment: datetime) -> str:
    """Graph's timestamp format: UTC, second precision, trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse the ISO 8601 forms the SDKs send (Z or offset, with or without fractions)."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
