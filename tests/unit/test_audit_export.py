"""The audit exporter is attached at start and builds its pipeline later; a pipeline that cannot be built turns
audit export off once, and never fails the request that logged the event."""

from __future__ import annotations

import logging

import pytest

from shared.adapters.telemetry import AuditExporter


def audit_record(operation: str) -> logging.LogRecord:
    record = logging.LogRecord("audit", logging.INFO, __file__, 1, "audit %s", (operation,), None)
    record.audit = {"operation": operation, "outcome": "succeeded"}
    return record


def test_a_connection_string_the_exporter_refuses_turns_audit_export_off_once(caplog: pytest.LogCaptureFixture) -> None:
    handler = AuditExporter({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=not-a-key"})
    with caplog.at_level(logging.ERROR, logger="shared.adapters.telemetry"):
        handler.start()  # what the composition does: it must not raise
        handler.handle(audit_record("application.created"))
        handler.handle(audit_record("secret.created"))
    assert handler.provider is None
    assert [r.getMessage() for r in caplog.records].count(
        "audit export to Application Insights is off: its exporter could not be set up (ValueError)"
    ) == 1
    handler.close()


def test_nothing_is_built_before_start_or_the_first_audit_record() -> None:
    handler = AuditExporter(
        {"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=00000000-0000-0000-0000-000000000000"}
    )
    assert handler.provider is None
    handler.handle(logging.LogRecord("audit", logging.INFO, __file__, 1, "not an audit event", (), None))
    assert handler.provider is None  # only audit events travel this way
    handler.close()
    handler.handle(audit_record("secret.created"))
    assert handler.provider is None  # closed: a late record builds no pipeline
