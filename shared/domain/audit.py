"""Audit events and the correlation id that ties one invocation's events together (never a secret).

Use cases call `audit` once per change they make in Entra or Key Vault; the telemetry adapter
(shared/adapters/telemetry.py) ships the `AUDIT_LOGGER` records to Application Insights, and an invocation that
`collecting()` gathers them hands the ones consumers care about to event delivery (shared/usecases/events.py).
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import uuid
from collections.abc import Iterator
from typing import Final

AUDIT_LOGGER: Final = "tenant_onboarding.audit"
audit_log = logging.getLogger(AUDIT_LOGGER)

# The invocation an audit event belongs to: set by each trigger (HTTP, timer, event, CLI) so every
# change one request makes can be found together in Application Insights.
correlation_id: contextvars.ContextVar[str] = contextvars.ContextVar("correlation_id", default="")
# The audit events of the invocation that is collecting them (None: nobody is). Tasks an invocation starts copy its
# context, so they append to the same list.
_collected: contextvars.ContextVar[list[dict[str, str]] | None] = contextvars.ContextVar(
    "audit_collected", default=None
)
CALLER_CORRELATION_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def new_correlation_id(given: str | None = None) -> str:
    """Use the caller's id when it is a sane token, else a fresh one; set it for this invocation."""
    value = given if given and CALLER_CORRELATION_ID.fullmatch(given) else str(uuid.uuid4())
    correlation_id.set(value)
    return value


def audit(operation: str, context: dict[str, str], **fields: str) -> None:
    """One structured audit event per change in Entra or Key Vault (never a secret).

    Logged at INFO on `tenant_onboarding.audit` with the event as the record's `audit` attribute;
    the Functions host ships it to Application Insights with the invocation's other traces."""
    event = {
        "operation": operation,
        "outcome": "succeeded",
        "correlationId": correlation_id.get() or new_correlation_id(),
        **context,
        **fields,
    }
    collected = _collected.get()
    if collected is not None:
        collected.append(event)
    audit_log.info("%s %s", operation, " ".join(f"{k}={v}" for k, v in sorted(event.items())), extra={"audit": event})


@contextlib.contextmanager
def collecting() -> Iterator[list[dict[str, str]]]:
    """The audit events emitted inside the block (and by the tasks it starts), in order."""
    events: list[dict[str, str]] = []
    token = _collected.set(events)
    try:
        yield events
    finally:
        _collected.reset(token)
